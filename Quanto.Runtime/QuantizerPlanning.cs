using Quanto.Nn;
using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto;

public static partial class Quantizer
{
    /// <summary>
    /// Measures how each Linear / Conv2d layer of a float eager model reacts to each candidate quantization, on
    /// <paramref name="samples"/>; see <see cref="Sensitivity(IEnumerable{QModule}, Func{Tensor},
    /// IEnumerable{PlanCandidate}?, IProgress{QuantizationProgress}?)"/>. The model is left as it was (its layers are
    /// swapped for measuring twins and back). A model already quantized (dynamic mode) is measured through its
    /// quantized modules.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="samples">Representative batches.</param>
    /// <param name="candidates">What to try (default <see cref="PlanCandidate.Defaults"/>).</param>
    /// <param name="progress">Reports each layer.</param>
    public static SensitivityReport Sensitivity(nn.Module<Tensor, Tensor> model, IEnumerable<Tensor> samples,
        IEnumerable<PlanCandidate>? candidates = null, IProgress<QuantizationProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Sensitivity(model, CalibrationPass(model, samples), candidates, progress);
    }

    /// <summary>
    /// <see cref="Sensitivity(nn.Module{Tensor, Tensor}, IEnumerable{Tensor}, IEnumerable{PlanCandidate}?,
    /// IProgress{QuantizationProgress}?)"/> for an eager model of any forward signature: the pass runs it on the
    /// samples (e.g. <c>() =&gt; bert.SentenceEmbeddings(ids, mask)</c>) and returns the output compared.
    /// </summary>
    /// <param name="model">The float (or dynamic-mode quantized) eager model; left as it was.</param>
    /// <param name="calibrationPass">Runs the model on the samples and returns its output.</param>
    /// <param name="candidates">What to try (default <see cref="PlanCandidate.Defaults"/>).</param>
    /// <param name="progress">Reports each layer.</param>
    public static SensitivityReport Sensitivity(nn.Module model, Func<Tensor> calibrationPass,
        IEnumerable<PlanCandidate>? candidates = null, IProgress<QuantizationProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(calibrationPass);
        return WithMeasuringModules(model, modules => Sensitivity(modules, calibrationPass, candidates, progress));
    }

    /// <summary>
    /// Per layer and candidate (qtype, group size, optimizer): the stored bits per weight with scales and shifts,
    /// the relative squared error of the layer's output on its sampled inputs, and that of the model's output with
    /// only that layer quantized (every other layer float). One pass per layer and candidate. Works for generated
    /// models too (their <c>QuantizedModules()</c> after <c>Quantize()</c>, and a pass calling
    /// <c>ForwardQuantized</c>): the modules' own settings do not matter while measuring.
    /// </summary>
    /// <param name="modules">The model's quantized modules (not frozen).</param>
    /// <param name="calibrationPass">Runs the model on the samples and returns its output.</param>
    /// <param name="candidates">What to try (default <see cref="PlanCandidate.Defaults"/>).</param>
    /// <param name="progress">Reports each layer.</param>
    public static SensitivityReport Sensitivity(IEnumerable<QModule> modules, Func<Tensor> calibrationPass,
        IEnumerable<PlanCandidate>? candidates = null, IProgress<QuantizationProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(modules);
        ArgumentNullException.ThrowIfNull(calibrationPass);
        List<PlanCandidate> list = CheckCandidates(candidates);
        return SensitivityMeasure.Run(modules.ToList(), calibrationPass, list, progress);
    }

    private static List<PlanCandidate> CheckCandidates(IEnumerable<PlanCandidate>? candidates)
    {
        List<PlanCandidate> list = (candidates ?? PlanCandidate.Defaults).ToList();
        if (list.Count == 0) throw new ArgumentException("Give at least one candidate.", nameof(candidates));
        foreach (PlanCandidate c in list)
        {
            QModule.CheckSettings(c.Weights, null, c.GroupSize);
            if (c.Gptq is not null && c.Weights is QType q && q.Info().IsFloat)
            {
                throw new ArgumentException($"Candidate '{c}': GPTQ rounds to an integer grid (qint2, qint4, " +
                                            $"qint8); {q.QuantoName()} weights are cast. Drop its Gptq options.",
                    nameof(candidates));
            }
        }
        return list;
    }

    /// <summary>
    /// Picks, per layer, the candidate (qtype, group size, optimizer, GPTQ or not) that keeps the model's output
    /// closest to float within <paramref name="bitsPerWeight"/> on average (scales and shifts counted). Three steps:
    /// (1) each layer alone: every candidate's layer error on sampled inputs, and the model's output error (one pass
    /// each) for the candidates on the lower convex hull of (bits, layer error); GPTQ candidates use the layer's
    /// Hessian from one more pass; (2) a first plan from those errors (a knapsack over the layers' convex hulls);
    /// (3) up to <paramref name="refinements"/> rounds of re-scoring in context: with every layer quantized as
    /// planned, each layer's neighbouring candidates are tried one at a time, the knapsack picks again from those
    /// errors, and the new plan is kept only if the whole model measures closer to float, so errors that compound
    /// (several 2-bit layers) are seen. Cost: per layer about (hull candidates + 1) passes, plus up to 4 passes per
    /// layer and round (each reported to <paramref name="progress"/>); memory: the frontier candidates' packed
    /// weights. The budget is checked before anything is measured. Apply the plan with
    /// <c>model.Quantize(plan)</c> (<see cref="QuantizationPlanExtensions"/>), then
    /// <see cref="Gptq(IEnumerable{QModule}, QuantizationPlan, Func{Tensor}, IProgress{QuantizationProgress}?)"/>
    /// for the layers it gave GPTQ.
    /// </summary>
    /// <param name="model">The float model (left as it was).</param>
    /// <param name="samples">Representative batches.</param>
    /// <param name="bitsPerWeight">The budget: mean stored bits per weight over the measured layers.</param>
    /// <param name="candidates">What to choose from (default <see cref="PlanCandidate.Defaults"/>).</param>
    /// <param name="progress">Reports each layer of each step.</param>
    /// <param name="refinements">Rounds of in-context re-scoring (0: the first plan).</param>
    /// <exception cref="ArgumentOutOfRangeException">The budget is below what the cheapest candidates need (the
    /// message gives that minimum), or not a positive number; or a negative refinement count.</exception>
    public static QuantizationPlan Plan(nn.Module<Tensor, Tensor> model, IEnumerable<Tensor> samples,
        double bitsPerWeight, IEnumerable<PlanCandidate>? candidates = null,
        IProgress<QuantizationProgress>? progress = null, int refinements = 2)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Plan(model, CalibrationPass(model, samples), bitsPerWeight, candidates, progress, refinements);
    }

    /// <summary><see cref="Plan(nn.Module{Tensor, Tensor}, IEnumerable{Tensor}, double, IEnumerable{PlanCandidate}?,
    /// IProgress{QuantizationProgress}?, int)"/> for an eager model of any forward signature (see
    /// <see cref="Sensitivity(nn.Module, Func{Tensor}, IEnumerable{PlanCandidate}?,
    /// IProgress{QuantizationProgress}?)"/>).
    /// </summary>
    /// <param name="model">The float model (left as it was).</param>
    /// <param name="calibrationPass">Runs the model on the samples and returns its output.</param>
    /// <param name="bitsPerWeight">The budget: mean stored bits per weight over the measured layers.</param>
    /// <param name="candidates">What to choose from (default <see cref="PlanCandidate.Defaults"/>).</param>
    /// <param name="progress">Reports each layer of each step.</param>
    /// <param name="refinements">Rounds of in-context re-scoring (0: the first plan).</param>
    /// <exception cref="ArgumentOutOfRangeException">The budget is below what the cheapest candidates need (the
    /// message gives that minimum), or not a positive number; or a negative refinement count.</exception>
    public static QuantizationPlan Plan(nn.Module model, Func<Tensor> calibrationPass, double bitsPerWeight,
        IEnumerable<PlanCandidate>? candidates = null, IProgress<QuantizationProgress>? progress = null,
        int refinements = 2)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(calibrationPass);
        CheckBudget(bitsPerWeight);
        ArgumentOutOfRangeException.ThrowIfNegative(refinements);
        List<PlanCandidate> list = CheckCandidates(candidates);
        return WithMeasuringModules(model, modules =>
        {
            double minimum = MinimumBits(modules, list);
            if (minimum > bitsPerWeight * (1 + 1e-12))
            {
                throw new ArgumentOutOfRangeException(nameof(bitsPerWeight), bitsPerWeight,
                    PlanSelection.BelowMinimum(minimum));
            }
            using var kept = new MeasuredWeights();
            SensitivityReport report = SensitivityMeasure.Run(modules, calibrationPass, list, progress, prune: true,
                keep: kept);
            var byPath = modules.ToDictionary(m => m.Path, StringComparer.Ordinal);
            // The plan may only pick what refinement (and the measured errors) can stand behind.
            List<LayerSensitivity> layers = report.Layers.Select(l => l with
            {
                Candidates = l.Candidates.Where(c => c.Candidate.Weights is null || kept.Has(byPath[l.Path], c))
                    .ToList(),
            }).Where(l => l.Candidates.Count > 0).ToList();
            CandidateResult[] chosen = PlanSelection.Choose(layers, bitsPerWeight);
            double measured = double.NaN;
            if (refinements > 0)
            {
                (chosen, measured) = PlanRefinement.Run(modules, calibrationPass, layers, chosen, kept,
                    bitsPerWeight, refinements, progress);
            }
            return PlanSelection.Build(layers, chosen, bitsPerWeight, measured);
        });
    }

    /// <summary>Mean stored bits per weight of the cheapest candidate of each layer that could be measured (from
    /// the layouts alone: nothing is run).</summary>
    private static double MinimumBits(IReadOnlyList<QModule> modules, IReadOnlyList<PlanCandidate> candidates)
    {
        using var noGrad = no_grad();
        double bits = 0;
        long parameters = 0;
        foreach (QModule module in modules.Where(m => SensitivityMeasure.Refusal(m) is null))
        {
            Tensor weight = module.FloatWeight!;
            double least = double.PositiveInfinity;
            foreach (PlanCandidate c in candidates)
            {
                if (c.Weights is not QType q)
                {
                    least = Math.Min(least, 8.0 * QuantizedWeight.ElementSize(weight.dtype));
                    continue;
                }
                // The layout does not depend on the optimizer: Max is the cheapest to run.
                using QuantizedWeight w = WeightQuantizer.Quantize(weight, q, c.GroupSize,
                    q.Info().IsPacked ? new MaxOptimizer() : null);
                least = Math.Min(least, w.ByteSize * 8.0 / w.NumberOfElements);
            }
            bits += least * weight.NumberOfElements;
            parameters += weight.NumberOfElements;
        }
        return parameters == 0 ? 0 : bits / parameters;
    }

    private static void CheckBudget(double bitsPerWeight)
    {
        if (!(bitsPerWeight > 0) || double.IsInfinity(bitsPerWeight))
            throw new ArgumentOutOfRangeException(nameof(bitsPerWeight), bitsPerWeight, "A positive budget.");
    }

    /// <summary>
    /// GPTQ (<see cref="Gptq(IEnumerable{QModule}, Func{Tensor}, GptqOptions?, IProgress{QuantizationProgress}?)"/>)
    /// on the modules whose plan choice asks for it, each with its choice's options (group scales from the module's
    /// optimizer, which the plan set), in the order the pass reaches them; those layers are frozen, the others are
    /// left as they are (freeze them afterwards). Call it after <c>model.Quantize(plan)</c>.
    /// </summary>
    /// <param name="modules">The model's quantized modules (not frozen).</param>
    /// <param name="plan">The plan the model was quantized with.</param>
    /// <param name="calibrationPass">Runs the model on the calibration batches and returns its output.</param>
    /// <param name="progress">Reports each layer's progress.</param>
    /// <returns>The GPTQ layers, and those the plan gave GPTQ that GPTQ could not take.</returns>
    public static GptqReport Gptq(IEnumerable<QModule> modules, QuantizationPlan plan, Func<Tensor> calibrationPass,
        IProgress<QuantizationProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(modules);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(calibrationPass);
        var layers = new List<GptqLayerResult>();
        var skipped = new List<SkippedModuleInfo>();
        foreach (var group in modules.Where(m => plan.For(m.Path)?.Choice.Gptq is not null)
                     .GroupBy(m => plan.For(m.Path)!.Choice.Gptq!))
        {
            GptqReport report = Gptq(group, calibrationPass, group.Key, progress);
            layers.AddRange(report.Layers);
            skipped.AddRange(report.Skipped);
        }
        return new GptqReport(layers, skipped);
    }

    /// <summary>The first-order plan a sensitivity measurement gives under a budget: the knapsack of <see
    /// cref="Plan(nn.Module{Tensor, Tensor}, IEnumerable{Tensor}, double, IEnumerable{PlanCandidate}?,
    /// IProgress{QuantizationProgress}?, int)"/>'s step 2 on each layer's isolated model errors, without re-scoring
    /// in context.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Even the cheapest candidates exceed the budget, or the budget
    /// is not a positive number.</exception>
    public static QuantizationPlan Plan(SensitivityReport sensitivity, double bitsPerWeight)
    {
        ArgumentNullException.ThrowIfNull(sensitivity);
        CheckBudget(bitsPerWeight);
        return PlanSelection.Select(sensitivity, bitsPerWeight);
    }

    /// <summary>Runs <paramref name="body"/> on the model's quantized modules; a float model gets measuring twins
    /// for the duration (its Linear / Conv2d layers swapped for quantized modules sharing their parameters, which
    /// the probe runs in float) and its own layers back afterwards.</summary>
    private static T WithMeasuringModules<T>(nn.Module model, Func<IReadOnlyList<QModule>, T> body)
    {
        List<QModule> existing = QuantizedModules(model).ToList();
        if (existing.Count > 0) return body(existing);
        var originals = new Dictionary<string, nn.Module>(StringComparer.Ordinal) { [""] = model };
        foreach ((string path, nn.Module module) in model.named_modules()) originals[path] = module;
        Quantize(model, weights: QType.QInt8);
        try
        {
            return body(QuantizedModules(model).ToList());
        }
        finally
        {
            foreach (QModule twin in QuantizedModules(model).ToList())
            {
                int dot = twin.Path.LastIndexOf('.');
                nn.Module parent = originals[dot < 0 ? "" : twin.Path[..dot]];
                if (ModuleSwapper.TryReplace(parent, twin.Path[(dot + 1)..], twin, originals[twin.Path]) is null)
                    twin.Abandon();
            }
        }
    }
}
