using System.Globalization;
using Quanto.Nn;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>How one candidate did on one layer.</summary>
/// <param name="Candidate">The candidate.</param>
/// <param name="GroupSize">The group size it resolved to on this layer (null for 8-bit and float).</param>
/// <param name="BitsPerWeight">Stored bits per weight, scales and shifts included.</param>
/// <param name="Bytes">Stored bytes of the weight.</param>
/// <param name="LayerError">||y - y_q||² / ||y||² of the layer's output on the sampled inputs.</param>
/// <param name="ModelError">The same for the model's output with only this layer quantized (others float).
/// </param>
public sealed record CandidateResult(PlanCandidate Candidate, int? GroupSize, double BitsPerWeight, long Bytes,
    double LayerError, double ModelError);

/// <summary>One layer's sensitivity: every candidate measured on it.</summary>
/// <param name="Path">The layer's module path.</param>
/// <param name="Parameters">Weight elements.</param>
/// <param name="Candidates">Results, one per distinct layout (candidates that resolve to the same group size and
/// optimizer on this layer are measured once).</param>
public sealed record LayerSensitivity(string Path, long Parameters, IReadOnlyList<CandidateResult> Candidates);

/// <summary>What <see cref="Quantizer.Sensitivity(IEnumerable{QModule}, Func{Tensor}, IEnumerable{PlanCandidate}?,
/// IProgress{QuantizationProgress}?)"/> measured.</summary>
/// <param name="Layers">The layers, in the order the samples reach them.</param>
/// <param name="Skipped">Quantized modules not measured, with why.</param>
public sealed record SensitivityReport(IReadOnlyList<LayerSensitivity> Layers, IReadOnlyList<SkippedModuleInfo> Skipped)
{
    /// <inheritdoc />
    public override string ToString()
    {
        CultureInfo c = CultureInfo.InvariantCulture;
        var lines = new List<string> { $"Sensitivity of {Layers.Count} layer(s) (relative squared output error)" };
        foreach (LayerSensitivity layer in Layers)
        {
            lines.Add(string.Create(c, $"  {layer.Path} ({layer.Parameters:N0} weights):"));
            lines.AddRange(layer.Candidates.Select(r => string.Create(c,
                $"    {r.Candidate,-16} {r.BitsPerWeight,5:F2} bits/weight  layer {r.LayerError:E2}  " +
                $"model {r.ModelError:E2}")));
        }
        lines.AddRange(Skipped.Select(s => $"  {s.Path}: not measured: {s.Reason}"));
        return string.Join(Environment.NewLine, lines);
    }
}

/// <summary>
/// Measures, layer by layer with every other layer float, how much each candidate quantization changes the layer's
/// output (on inputs sampled during one pass) and the model's output (one pass per candidate).
/// </summary>
internal static class SensitivityMeasure
{
    /// <summary>Elements of a layer's first input kept for its layer error (rows beyond are dropped).</summary>
    private const long SampleElements = 1L << 18;

    internal static SensitivityReport Run(IReadOnlyList<QModule> modules, Func<Tensor> pass,
        IReadOnlyList<PlanCandidate> candidates, IProgress<QuantizationProgress>? progress)
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
                progress?.Report(new QuantizationProgress("sensitivity", module.Path, i, measured.Count, 0));
                layers.Add(Measure(probe, module, samples[module], baseline, pass, candidates));
                progress?.Report(new QuantizationProgress("sensitivity", module.Path, i, measured.Count, 1));
            }
        }
        finally
        {
            foreach (Tensor sample in samples.Values) sample.Dispose();
        }
        return new SensitivityReport(layers, skipped);
    }

    private static string? Refusal(QModule module) => module switch
    {
        QLayerNorm => "its weights stay float",
        { IsFrozen: true } => "already frozen: measuring needs the float weight",
        { FloatWeight: null } => "it has no weight",
        QLinear or QConv2d => null,
        _ => $"{module.GetType().Name} runs no weight through the measured path",
    };

    private static LayerSensitivity Measure(ModuleProbe probe, QModule module, Tensor sample, Tensor baseline,
        Func<Tensor> pass, IReadOnlyList<PlanCandidate> candidates)
    {
        using var noGrad = no_grad();
        Tensor weight = module.FloatWeight!;
        // A small layer's candidates are small libtorch ops (quantize, the layer on its sample, the passes).
        using var threads = TorchThreads.For(weight);
        var results = new List<CandidateResult>();
        var layouts = new HashSet<string>(StringComparer.Ordinal);
        using Tensor reference = module.forward(sample);
        foreach (PlanCandidate candidate in candidates)
        {
            if (candidate.Weights is not QType qtype)
            {
                long floatBytes = weight.NumberOfElements * QuantizedWeight.ElementSize(weight.dtype);
                if (layouts.Add("float"))
                    results.Add(new CandidateResult(candidate, null, floatBytes * 8.0 / weight.NumberOfElements,
                        floatBytes, 0, 0));
                continue;
            }
            using QuantizedWeight q = WeightQuantizer.Quantize(weight, qtype, candidate.GroupSize, candidate.Optimizer);
            int? group = (q as WeightQBitsTensor)?.GroupSize;
            string optimizer = (candidate.Optimizer ?? Optimizer.DefaultFor(qtype)).GetType().Name;
            if (!layouts.Add($"{qtype}/{group}/{optimizer}")) continue;
            using Tensor dq = q.Dequantize();
            probe.SetWeight(module, dq);
            try
            {
                double layerError;
                using (Tensor output = module.forward(sample)) layerError = RelativeSquaredError(reference, output);
                double modelError;
                using (Tensor output = probe.Run(pass)) modelError = RelativeSquaredError(baseline, output);
                results.Add(new CandidateResult(candidate, group, q.ByteSize * 8.0 / q.NumberOfElements, q.ByteSize,
                    layerError, modelError));
            }
            finally
            {
                probe.SetWeight(module, null);
            }
        }
        return new LayerSensitivity(module.Path, weight.NumberOfElements, results);
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
