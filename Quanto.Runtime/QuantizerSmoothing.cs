using System.Globalization;
using Quanto.Nn;
using Quanto.Quantization;
using static TorchSharp.torch;

namespace Quanto;

public static partial class Quantizer
{
    /// <summary>
    /// Activation-aware weight scaling (AWQ) for a model quantized with <see cref="Quantize"/> (dynamic mode), on
    /// <paramref name="samples"/>; see <see cref="Awq(nn.Module, IEnumerable{QModule}, Func{Tensor}, int,
    /// IProgress{QuantizationProgress}?)"/>.
    /// </summary>
    public static SmoothingReport Awq(nn.Module<Tensor, Tensor> model, IEnumerable<Tensor> samples, int grid = 20,
        IProgress<QuantizationProgress>? progress = null) =>
        Awq(model, QuantizedModules(model), CalibrationPass(model, samples), grid, progress);

    /// <summary>
    /// Activation-aware weight scaling (AWQ): for each group of quantized linear layers that share an input, a
    /// per-input-channel scale s = mean|x|^α (α searched on the calibration inputs to minimise the layers' output
    /// error under their own weight quantization) is folded into the float weights: the layers' columns are
    /// multiplied by s and the LayerNorm or Linear that produces their input divides its output channels by s. The
    /// float model computes the same function; only the quantization improves, and the quantized files keep
    /// optimum-quanto's layout. Groups with no producer that can absorb 1/s (checked by measurement: see
    /// <see cref="SmoothingReport"/>) are left as they are. Run it before <see cref="Gptq(IEnumerable{QModule},
    /// Func{Tensor}, GptqOptions?, IProgress{QuantizationProgress}?)"/>, calibration and freezing.
    /// </summary>
    /// <param name="model">The model (its LayerNorm and Linear layers are the candidate producers).</param>
    /// <param name="modules">Its quantized modules (eager: <see cref="QuantizedModules"/>; generated:
    /// <c>model.QuantizedModules()</c>); those with integer weights, not frozen, are smoothed.</param>
    /// <param name="calibrationPass">Runs the model on the calibration batches and returns its output.</param>
    /// <param name="grid">Values of α tried in [0, 1).</param>
    /// <param name="progress">Reports each group.</param>
    public static SmoothingReport Awq(nn.Module model, IEnumerable<QModule> modules, Func<Tensor> calibrationPass,
        int grid = 20, IProgress<QuantizationProgress>? progress = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(grid);
        return Smooth("AWQ", model, modules, calibrationPass, progress,
            m => m is { WeightQType: QType q, IsFrozen: false } && !q.Info().IsFloat,
            group => SmoothingScales.Awq(group, grid));
    }

    /// <summary>SmoothQuant for a model quantized with int8 activations (dynamic mode), on
    /// <paramref name="samples"/>; see <see cref="SmoothQuant(nn.Module, IEnumerable{QModule}, Func{Tensor}, double,
    /// IProgress{QuantizationProgress}?)"/>.</summary>
    public static SmoothingReport SmoothQuant(nn.Module<Tensor, Tensor> model, IEnumerable<Tensor> samples,
        double alpha = 0.5, IProgress<QuantizationProgress>? progress = null) =>
        SmoothQuant(model, QuantizedModules(model), CalibrationPass(model, samples), alpha, progress);

    /// <summary>
    /// SmoothQuant for W8A8: for each group of linear layers with quantized activations that share an input,
    /// s_j = max|x_j|^α / max|W_:,j|^(1-α) is folded into the float weights (columns times s, the producing LayerNorm
    /// or Linear divided by s), so the activations' outlier channels move into the weights and per-tensor int8
    /// inputs keep their resolution. The float output is unchanged (checked); files stay optimum-quanto's. Run it
    /// before calibration. Groups no producer can absorb are reported and left alone.
    /// </summary>
    /// <param name="model">The model (its LayerNorm and Linear layers are the candidate producers).</param>
    /// <param name="modules">Its quantized modules; those quantizing activations, not frozen, are smoothed.</param>
    /// <param name="calibrationPass">Runs the model on the calibration batches and returns its output.</param>
    /// <param name="alpha">Migration strength in [0, 1] (0.5 in the paper; higher moves more into the weights).
    /// </param>
    /// <param name="progress">Reports each group.</param>
    public static SmoothingReport SmoothQuant(nn.Module model, IEnumerable<QModule> modules,
        Func<Tensor> calibrationPass, double alpha = 0.5, IProgress<QuantizationProgress>? progress = null)
    {
        if (!(alpha >= 0 && alpha <= 1))
            throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "SmoothQuant's alpha lies in [0, 1].");
        return Smooth("SmoothQuant", model, modules, calibrationPass, progress,
            m => m is { ActivationQType: not null, IsFrozen: false, FloatWeight: not null },
            group =>
            {
                (Tensor s, double before, double after) = SmoothingScales.SmoothQuant(group, alpha);
                return (s, alpha, before, after);
            });
    }

    private static SmoothingReport Smooth(string method, nn.Module model, IEnumerable<QModule> modules,
        Func<Tensor> calibrationPass, IProgress<QuantizationProgress>? progress, Func<QModule, bool> consumers,
        Func<Smoothing.ConsumerGroup, (Tensor Scale, double Alpha, double Before, double After)> scales)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(modules);
        ArgumentNullException.ThrowIfNull(calibrationPass);
        List<QModule> all = modules.ToList();
        var results = new List<SmoothedGroup>();
        using Smoothing smoothing = Smoothing.Start(all, consumers, calibrationPass);
        smoothing.FindProducers(ChannelProducer.Find(model, all));
        for (int i = 0; i < smoothing.Groups.Count; i++)
        {
            Smoothing.ConsumerGroup group = smoothing.Groups[i];
            progress?.Report(new QuantizationProgress(method, group.Consumers[0].Path, i, smoothing.Groups.Count, 0));
            if (group.Producer is null)
            {
                results.Add(new SmoothedGroup(group.Paths, null, false, "no LayerNorm or Linear feeds these layers " +
                    "directly, so 1/s has nowhere to go in the float weights (scaling the input at run time would " +
                    "need a tensor optimum-quanto's files do not have)", null, double.NaN, double.NaN, 1, 1));
                continue;
            }
            // A group of small layers is searched with small libtorch ops.
            using var threads = TorchThreads.For(group.Consumers.Sum(c => c.FloatWeight?.numel() ?? 0));
            (Tensor scale, double alpha, double before, double after) = scales(group);
            using (scale)
            {
                (double low, double high) = (scale.min().item<float>(), scale.max().item<float>());
                bool useful = after < before;
                string? refusal = useful ? smoothing.Fold(group, scale) : null;
                results.Add(new SmoothedGroup(group.Paths, group.Producer.Path, useful && refusal is null,
                    useful ? refusal : "no scale improved on the unscaled weights", alpha, before,
                    useful && refusal is null ? after : before, low, high));
            }
            progress?.Report(new QuantizationProgress(method, group.Consumers[0].Path, i, smoothing.Groups.Count, 1));
        }
        return new SmoothingReport(method, results);
    }
}

/// <summary>One group of layers sharing an input, and what smoothing did to it.</summary>
/// <param name="Layers">The layers' paths.</param>
/// <param name="Producer">The LayerNorm or Linear that produces their input, or null if none was found.</param>
/// <param name="Applied">Whether a scale was folded in.</param>
/// <param name="Reason">Why not, when not applied.</param>
/// <param name="Alpha">The exponent used (AWQ: the one the search chose).</param>
/// <param name="ErrorBefore">Relative output error of the group on the sampled calibration inputs, unscaled.</param>
/// <param name="ErrorAfter">The same with the scale applied (equal to the first when not applied).</param>
/// <param name="ScaleMin">Smallest channel scale.</param>
/// <param name="ScaleMax">Largest channel scale.</param>
public sealed record SmoothedGroup(IReadOnlyList<string> Layers, string? Producer, bool Applied, string? Reason,
    double? Alpha, double ErrorBefore, double ErrorAfter, double ScaleMin, double ScaleMax);

/// <summary>What <see cref="Quantizer.Awq(nn.Module, IEnumerable{QModule}, Func{Tensor}, int,
/// IProgress{QuantizationProgress}?)"/> or <see cref="Quantizer.SmoothQuant(nn.Module, IEnumerable{QModule},
/// Func{Tensor}, double, IProgress{QuantizationProgress}?)"/> did.</summary>
/// <param name="Method">"AWQ" or "SmoothQuant".</param>
/// <param name="Groups">Each group of layers sharing an input.</param>
public sealed record SmoothingReport(string Method, IReadOnlyList<SmoothedGroup> Groups)
{
    /// <inheritdoc />
    public override string ToString()
    {
        var lines = new List<string>
        {
            $"{Method}: {Groups.Count(g => g.Applied)} of {Groups.Count} input group(s) scaled",
        };
        foreach (SmoothedGroup g in Groups)
        {
            string layers = string.Join(", ", g.Layers);
            lines.Add(g.Applied
                ? string.Create(CultureInfo.InvariantCulture,
                    $"  {layers} (from {g.Producer}): alpha {g.Alpha:F2}, scales {g.ScaleMin:G3}..{g.ScaleMax:G3}, " +
                    $"output error {g.ErrorBefore:E2} -> {g.ErrorAfter:E2}")
                : $"  {layers}: not scaled: {g.Reason}");
        }
        return string.Join(Environment.NewLine, lines);
    }
}
