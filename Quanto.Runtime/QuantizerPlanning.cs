using Quanto.Nn;
using Quanto.Quantization;
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
        List<PlanCandidate> list = (candidates ?? PlanCandidate.Defaults).ToList();
        if (list.Count == 0) throw new ArgumentException("Give at least one candidate.", nameof(candidates));
        foreach (PlanCandidate c in list) QModule.CheckSettings(c.Weights, null, c.GroupSize);
        return SensitivityMeasure.Run(modules.ToList(), calibrationPass, list, progress);
    }

    /// <summary>
    /// Measures the model (<see cref="Sensitivity(nn.Module{Tensor, Tensor}, IEnumerable{Tensor},
    /// IEnumerable{PlanCandidate}?, IProgress{QuantizationProgress}?)"/>) and picks, per layer, the candidate that
    /// keeps the model's output closest to float within <paramref name="bitsPerWeight"/> on average (scales and
    /// shifts counted). Apply it with <c>model.Quantize(plan)</c> (<see cref="QuantizationPlanExtensions"/>).
    /// </summary>
    /// <param name="model">The float model (left as it was).</param>
    /// <param name="samples">Representative batches.</param>
    /// <param name="bitsPerWeight">The budget: mean stored bits per weight over the measured layers.</param>
    /// <param name="candidates">What to choose from (default <see cref="PlanCandidate.Defaults"/>).</param>
    /// <param name="progress">Reports each layer.</param>
    /// <exception cref="ArgumentOutOfRangeException">Even the cheapest candidates exceed the budget.</exception>
    public static QuantizationPlan Plan(nn.Module<Tensor, Tensor> model, IEnumerable<Tensor> samples,
        double bitsPerWeight, IEnumerable<PlanCandidate>? candidates = null,
        IProgress<QuantizationProgress>? progress = null) =>
        Plan(Sensitivity(model, samples, candidates, progress), bitsPerWeight);

    /// <summary><see cref="Plan(nn.Module{Tensor, Tensor}, IEnumerable{Tensor}, double, IEnumerable{PlanCandidate}?,
    /// IProgress{QuantizationProgress}?)"/> for an eager model of any forward signature (see
    /// <see cref="Sensitivity(nn.Module, Func{Tensor}, IEnumerable{PlanCandidate}?,
    /// IProgress{QuantizationProgress}?)"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Even the cheapest candidates exceed the budget.</exception>
    public static QuantizationPlan Plan(nn.Module model, Func<Tensor> calibrationPass, double bitsPerWeight,
        IEnumerable<PlanCandidate>? candidates = null, IProgress<QuantizationProgress>? progress = null) =>
        Plan(Sensitivity(model, calibrationPass, candidates, progress), bitsPerWeight);

    /// <summary>The plan a sensitivity measurement gives under a budget (see <see cref="Plan(nn.Module{Tensor,
    /// Tensor}, IEnumerable{Tensor}, double, IEnumerable{PlanCandidate}?, IProgress{QuantizationProgress}?)"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Even the cheapest candidates exceed the budget, or the budget
    /// is not a positive number.</exception>
    public static QuantizationPlan Plan(SensitivityReport sensitivity, double bitsPerWeight)
    {
        ArgumentNullException.ThrowIfNull(sensitivity);
        if (!(bitsPerWeight > 0) || double.IsInfinity(bitsPerWeight))
            throw new ArgumentOutOfRangeException(nameof(bitsPerWeight), bitsPerWeight, "A positive budget.");
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
