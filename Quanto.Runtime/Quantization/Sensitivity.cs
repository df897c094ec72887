using System.Globalization;
using Quanto.Nn;
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
/// <param name="ModelErrorMeasured">False when the planner did not run the model for this candidate (its layer
/// error put it above the layer's lower convex hull): <paramref name="ModelError"/> is then the layer error times
/// the layer's mean ratio of model to layer error over the measured candidates.</param>
public sealed record CandidateResult(PlanCandidate Candidate, int? GroupSize, double BitsPerWeight, long Bytes,
    double LayerError, double ModelError, bool ModelErrorMeasured = true);

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
                $"model {r.ModelError:E2}{(r.ModelErrorMeasured ? "" : " (estimated)")}")));
        }
        lines.AddRange(Skipped.Select(s => $"  {s.Path}: not measured: {s.Reason}"));
        return string.Join(Environment.NewLine, lines);
    }
}

