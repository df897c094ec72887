using Quanto.Nn;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>
/// Measures, layer by layer with every other layer float, how much each candidate quantization changes the layer's
/// output (on inputs sampled during one pass) and the model's output (one pass per candidate). GPTQ candidates get
/// the layer's Hessian from one more pass (one layer's Hessian at a time). With pruning (the planner's mode) the
/// model is run only for the candidates on the lower convex hull of (bits, layer error): the others cost a layer
/// forward, not a model pass.
/// </summary>
internal static class SensitivityMeasure
{
    /// <summary>Elements of a layer's first input kept for its layer error (rows beyond are dropped).</summary>
    private const long SampleElements = 1L << 18;

    internal static SensitivityReport Run(IReadOnlyList<QModule> modules, Func<Tensor> pass,
        IReadOnlyList<PlanCandidate> candidates, IProgress<QuantizationProgress>? progress, bool prune = false,
        MeasuredWeights? keep = null)
    {
        var skipped = new List<SkippedModuleInfo>();
        var layers = new List<LayerSensitivity>();
        using ModuleProbe probe = ModuleProbe.Attach(modules);
        var samples = new Dictionary<QModule, Tensor>(ReferenceEqualityComparer.Instance);
        var order = new List<QModule>();
        try
        {
            using Tensor baseline = probe.Run(pass, (module, input) =>
            {
                if (samples.ContainsKey(module)) return;
                order.Add(module);
                long perRow = Math.Max(1, input.NumberOfElements / Math.Max(1, input.shape[0]));
                long rows = Math.Clamp(SampleElements / perRow, 1, input.shape[0]);
                samples[module] = input.detach().narrow(0, 0, rows).clone().DetachFromDisposeScope();
            });
            foreach (QModule module in modules.Where(m => !samples.ContainsKey(m) && m.WeightQType is not null))
                skipped.Add(new SkippedModuleInfo(module.Path, module.GetType().Name, "the samples never reach it"));
            List<QModule> measured = [];
            foreach (QModule module in order)
            {
                if (Refusal(module) is string why)
                {
                    if (module.WeightQType is not null || module is not QLayerNorm)
                        skipped.Add(new SkippedModuleInfo(module.Path, module.GetType().Name, why));
                }
                else
                {
                    measured.Add(module);
                }
            }
            for (int i = 0; i < measured.Count; i++)
            {
                QModule module = measured[i];
                int index = i;
                void Report(double f) =>
                    progress?.Report(new QuantizationProgress("sensitivity", module.Path, index, measured.Count, f));
                Report(0);
                layers.Add(Measure(probe, module, samples[module], baseline, pass, candidates, prune, keep, Report));
                Report(1);
            }
        }
        finally
        {
            foreach (Tensor sample in samples.Values) sample.Dispose();
        }
        return new SensitivityReport(layers, skipped);
    }

    /// <summary>Why a module cannot be measured, or null.</summary>
    internal static string? Refusal(QModule module) => module switch
    {
        QLayerNorm => "its weights stay float",
        { IsFrozen: true } => "already frozen: measuring needs the float weight",
        { FloatWeight: null } => "it has no weight",
        QLinear or QConv2d => null,
        _ => $"{module.GetType().Name} runs no weight through the measured path",
    };

    private static LayerSensitivity Measure(ModuleProbe probe, QModule module, Tensor sample, Tensor baseline,
        Func<Tensor> pass, IReadOnlyList<PlanCandidate> candidates, bool prune, MeasuredWeights? keep,
        Action<double> report)
    {
        using var noGrad = no_grad();
        Tensor weight = module.FloatWeight!;
        // A small layer's candidates are small libtorch ops (quantize, the layer on its sample, the passes).
        using var threads = TorchThreads.For(weight);
        var found = new List<(CandidateResult Result, QuantizedWeight? Weight)>();
        var layouts = new HashSet<string>(StringComparer.Ordinal);
        using Tensor reference = module.forward(sample);
        using GptqHessian? hessian = NeedsHessian(module, candidates) ? Hessian(probe, module, pass) : null;
        try
        {
            // Pruning: GPTQ lowers a layout's error but seldom lifts a layout whose plain rounding is off the layer's
            // (bits, layer error) hull onto it, so GPTQ runs only for layouts on the hull of the plain ones.
            List<PlanCandidate> plain = candidates.Where(c => c.Gptq is null || hessian is null).ToList();
            List<PlanCandidate> deferred = prune ? candidates.Except(plain).ToList() : [];
            List<PlanCandidate> order = prune ? plain : candidates.ToList();
            for (int k = 0; k < order.Count + deferred.Count; k++)
            {
                if (k == order.Count)
                {
                    List<CandidateResult> hull = PlanSelection.Hull(found.Select(f => f.Result).ToList(),
                        r => r.LayerError);
                    order.AddRange(deferred.Where(c => !found.Any(f => SameLayout(f.Result.Candidate, c)) ||
                                                       hull.Any(r => SameLayout(r.Candidate, c))));
                    deferred.Clear();
                    if (k == order.Count) break;
                }
                PlanCandidate candidate = order[k];
                if (candidate.Weights is not QType qtype)
                {
                    long floatBytes = weight.NumberOfElements * QuantizedWeight.ElementSize(weight.dtype);
                    if (layouts.Add("float"))
                    {
                        found.Add((new CandidateResult(candidate, null, floatBytes * 8.0 / weight.NumberOfElements,
                            floatBytes, 0, 0), null));
                    }
                    continue;
                }
                bool gptq = candidate.Gptq is not null && hessian is not null;
                QuantizedWeight q = gptq
                    ? Gptq.Quantize(weight, hessian!.Matrix, qtype, candidate.GroupSize, GptqOptionsFor(candidate))
                    : WeightQuantizer.Quantize(weight, qtype, candidate.GroupSize, candidate.Optimizer);
                int? group = (q as WeightQBitsTensor)?.GroupSize;
                string optimizer = (candidate.Optimizer ?? Optimizer.DefaultFor(qtype)).GetType().Name;
                if (!layouts.Add($"{qtype}/{group}/{optimizer}/{(gptq ? candidate.Gptq : null)}"))
                {
                    q.Dispose();
                    continue;
                }
                double layerError;
                using (Tensor dq = q.Dequantize())
                {
                    probe.SetWeight(module, dq);
                    try
                    {
                        using Tensor output = module.forward(sample);
                        layerError = RelativeSquaredError(reference, output);
                    }
                    finally
                    {
                        probe.SetWeight(module, null);
                    }
                }
                found.Add((new CandidateResult(candidate with { Gptq = gptq ? candidate.Gptq : null }, group,
                    q.ByteSize * 8.0 / q.NumberOfElements, q.ByteSize, layerError, double.NaN), q));
                report(0.5 * (k + 1) / (order.Count + deferred.Count));
            }
            HashSet<CandidateResult> run = prune
                ? PlanSelection.Hull(found.Select(f => f.Result).ToList(), r => r.LayerError).ToHashSet()
                : found.Select(f => f.Result).ToHashSet();
            var results = new List<CandidateResult>();
            for (int k = 0; k < found.Count; k++)
            {
                (CandidateResult r, QuantizedWeight? q) = found[k];
                if (q is null || !run.Contains(r))
                {
                    results.Add(r);
                    continue;
                }
                using Tensor dq = q.Dequantize();
                probe.SetWeight(module, dq);
                try
                {
                    using Tensor output = probe.Run(pass);
                    results.Add(r with { ModelError = RelativeSquaredError(baseline, output) });
                }
                finally
                {
                    probe.SetWeight(module, null);
                }
                report(0.5 + (0.5 * (k + 1) / found.Count));
            }
            results = Estimate(results);
            // Refinement only moves along the measured (bits, model error) frontier: keep just those weights.
            HashSet<CandidateResult> kept = keep is null
                ? []
                : PlanSelection.Pareto(results.Where(r => r.ModelErrorMeasured).ToList(), r => r.ModelError)
                    .ToHashSet();
            for (int k = 0; k < found.Count; k++)
            {
                if (found[k].Weight is QuantizedWeight q)
                {
                    if (kept.Contains(results[k])) keep!.Add(module, results[k], q);
                    else q.Dispose();
                }
            }
            found.Clear();
            return new LayerSensitivity(module.Path, weight.NumberOfElements, results);
        }
        finally
        {
            foreach ((_, QuantizedWeight? q) in found) q?.Dispose();
        }
    }

    /// <summary>Same qtype, group size and optimizer (GPTQ or not aside).</summary>
    private static bool SameLayout(PlanCandidate a, PlanCandidate b) =>
        a.Weights == b.Weights && a.GroupSize == b.GroupSize && a.Optimizer?.GetType() == b.Optimizer?.GetType();

    /// <summary>Candidates whose model pass was skipped get the layer's mean model-to-layer error ratio times their
    /// own layer error.</summary>
    private static List<CandidateResult> Estimate(List<CandidateResult> results)
    {
        double[] ratios = results.Where(r => !double.IsNaN(r.ModelError) && r.LayerError > 0)
            .Select(r => r.ModelError / r.LayerError).ToArray();
        double ratio = ratios.Length > 0 ? ratios.Average() : 1;
        return results.Select(r => double.IsNaN(r.ModelError)
            ? r with { ModelError = r.LayerError * ratio, ModelErrorMeasured = false }
            : r).ToList();
    }

    private static bool NeedsHessian(QModule module, IReadOnlyList<PlanCandidate> candidates) =>
        module is QLinear or QConv2d { groups: 1 } &&
        candidates.Any(c => c.Gptq is not null && c.Weights is QType q && !q.Info().IsFloat);

    /// <summary>GPTQ's options for a candidate: its group scales from the candidate's optimizer unless the options
    /// name one.</summary>
    internal static GptqOptions GptqOptionsFor(PlanCandidate candidate) =>
        candidate.Gptq!.GroupOptimizer is null && candidate.Optimizer is AffineOptimizer a
            ? candidate.Gptq with { GroupOptimizer = a }
            : candidate.Gptq!;

    /// <summary>Σ x xᵀ of the layer's inputs over one pass (every other layer float).</summary>
    private static GptqHessian Hessian(ModuleProbe probe, QModule module, Func<Tensor> pass)
    {
        Tensor weight = module.FloatWeight!;
        var hessian = new GptqHessian(weight.NumberOfElements / weight.shape[0], weight.device);
        try
        {
            probe.Run(pass, (m, x) =>
            {
                if (ReferenceEquals(m, module)) hessian.AddInputOf(m, x);
            }).Dispose();
            return hessian;
        }
        catch
        {
            hessian.Dispose();
            throw;
        }
    }

    /// <summary>||actual - expected||² / ||expected||².</summary>
    internal static double RelativeSquaredError(Tensor expected, Tensor actual)
    {
        using var scope = NewDisposeScope();
        Tensor e = expected.to(ScalarType.Float64), a = actual.to(ScalarType.Float64);
        double energy = e.square().sum().item<double>();
        double error = e.sub(a).square().sum().item<double>();
        return energy > 0 ? error / energy : error;
    }
}
