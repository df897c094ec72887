using System.Globalization;
using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>One way to quantize a layer's weight that a plan may pick.</summary>
/// <param name="Weights">The weight qtype; null keeps the layer float.</param>
/// <param name="GroupSize">Requested group size of 2/4-bit weights (optimum-quanto's fallback applies per layer).
/// </param>
/// <param name="Optimizer">The weight optimizer (null: the qtype's default); with <paramref name="Gptq"/>, the
/// optimizer of GPTQ's group scales unless its options name one.</param>
/// <param name="Gptq">Round with GPTQ on the calibration inputs instead of to nearest (qint2, qint4, qint8); null:
/// round to nearest. Applied by <see cref="Quantizer.Gptq(IEnumerable{Nn.QModule}, QuantizationPlan, Func{Tensor},
/// IProgress{QuantizationProgress}?)"/> after <c>model.Quantize(plan)</c>.</param>
public sealed record PlanCandidate(QType? Weights, int? GroupSize = null, Optimizer? Optimizer = null,
    GptqOptions? Gptq = null)
{
    /// <summary>Leave the layer float.</summary>
    public static PlanCandidate Float { get; } = new((QType?)null);

    private static readonly GptqOptions s_actOrder = new() { ActOrder = true };

    /// <summary>The candidates <see cref="Quantizer.Plan(nn.Module{Tensor, Tensor}, IEnumerable{Tensor}, double,
    /// IEnumerable{PlanCandidate}?, IProgress{QuantizationProgress}?, int)"/> tries by default: qint2 in groups of 32,
    /// 64 and 128 and qint4 in groups of 32, 64, 128 and 256, rounded to nearest with HQQ; the same with GPTQ
    /// (act-order, HQQ group scales) except at group 32 (6 bits at int4, 4 at int2: int8 and int4 g256 sit next to
    /// them); and qint8 per channel: 13 candidates from 2.5 to 8 bits per weight (float32 scales). Max is left out:
    /// HQQ's ranges were never worse on the real-weight checks (README).</summary>
    public static IReadOnlyList<PlanCandidate> Defaults { get; } =
    [
        .. new[] { (QType.QInt2, new[] { 32, 64, 128 }), (QType.QInt4, new[] { 32, 64, 128, 256 }) }
            .SelectMany(q => q.Item2.SelectMany(g => g == 32
                ? new PlanCandidate[] { new(q.Item1, g, new HqqOptimizer()) }
                : [new(q.Item1, g, new HqqOptimizer()), new(q.Item1, g, new HqqOptimizer(), s_actOrder)])),
        new(QType.QInt8),
    ];

    /// <summary>"qint4 g64 hqq", "qint4 g128 hqq gptq act-order", "qint2 g64 hqq gptq act-order asymmetric", "qint8",
    /// "float".</summary>
    public override string ToString()
    {
        if (Weights is not QType q) return "float";
        string group = q.Info().IsPacked ? $" g{GroupSize ?? Quantization.GroupSize.Default}" : "";
        string optimizer = Optimizer switch
        {
            null => "",
            HqqOptimizer => " hqq",
            MaxOptimizer => " max",
            AbsmaxOptimizer => "",
            Optimizer o => " " + o.GetType().Name,
        };
        string gptq = Gptq switch
        {
            null => "",
            { ActOrder: true } => " gptq act-order",
            _ => " gptq",
        } + (Gptq is { Asymmetric: true } ? " asymmetric" : "");
        return q.QuantoName() + group + optimizer + gptq;
    }
}

/// <summary>A plan's choice for one layer.</summary>
/// <param name="Path">The layer's module path.</param>
/// <param name="Choice">What to quantize it to.</param>
/// <param name="Parameters">Weight elements of the layer.</param>
/// <param name="BitsPerWeight">Stored bits per weight with that choice, scales and shifts included.</param>
/// <param name="LayerError">Relative squared error of the layer's output on the samples with that choice.</param>
/// <param name="ModelError">Relative squared error of the model's output with only this layer quantized.</param>
public sealed record LayerPlan(string Path, PlanCandidate Choice, long Parameters, double BitsPerWeight,
    double LayerError, double ModelError);

/// <summary>
/// A per-layer choice of weight qtype, group size and optimizer, looked up by module path. Made by
/// <see cref="Quantizer.Plan(SensitivityReport, double)"/>; applied by <see cref="QuantizationPlanExtensions.Quantize(
/// nn.Module, QuantizationPlan, QType?)"/> (eager models) or a generated model's Quantize (which asks
/// <see cref="For"/> per layer). Layers the plan does not list are left as the caller's settings say.
/// </summary>
public sealed class QuantizationPlan
{
    private readonly Dictionary<string, LayerPlan> _byPath;

    /// <summary>Creates a plan from per-layer choices.</summary>
    /// <param name="layers">One entry per layer path.</param>
    /// <param name="targetBitsPerWeight">The budget it was made for (NaN if none).</param>
    /// <exception cref="ArgumentException">Two entries share a path.</exception>
    /// <param name="measuredModelError">The quantized model's relative output error with every layer as planned,
    /// when measured (NaN if not).</param>
    public QuantizationPlan(IEnumerable<LayerPlan> layers, double targetBitsPerWeight = double.NaN,
        double measuredModelError = double.NaN)
    {
        ArgumentNullException.ThrowIfNull(layers);
        Layers = layers.ToList();
        _byPath = new Dictionary<string, LayerPlan>(StringComparer.Ordinal);
        foreach (LayerPlan layer in Layers)
        {
            if (!_byPath.TryAdd(layer.Path, layer))
                throw new ArgumentException($"The plan lists layer '{layer.Path}' twice.", nameof(layers));
        }
        TargetBitsPerWeight = targetBitsPerWeight;
        MeasuredModelError = measuredModelError;
    }

    /// <summary>The layers, in model order.</summary>
    public IReadOnlyList<LayerPlan> Layers { get; }

    /// <summary>The budget the plan was made for.</summary>
    public double TargetBitsPerWeight { get; }

    /// <summary>Mean stored bits per weight over the planned layers (weighted by their sizes).</summary>
    public double BitsPerWeight
    {
        get
        {
            long parameters = Layers.Sum(l => l.Parameters);
            return parameters == 0 ? 0 : Layers.Sum(l => l.BitsPerWeight * l.Parameters) / parameters;
        }
    }

    /// <summary>Sum of the chosen layers' model errors: a first-order estimate of the quantized model's relative
    /// output error.</summary>
    public double EstimatedModelError => Layers.Sum(l => l.ModelError);

    /// <summary>The relative squared error of the model's output on the samples with every planned layer quantized
    /// as planned (GPTQ choices with each layer's own Hessian), as the planner measured it; NaN when it was made
    /// from a sensitivity report alone.</summary>
    public double MeasuredModelError { get; }

    /// <summary>
    /// This plan with every qint2 and qint4 layer rounded by GPTQ with <paramref name="options"/> (its qtype, group
    /// size and optimizer kept, so its stored bits per weight do not change); qint8, float8 and float layers are left
    /// as they are. Plan with a few samples, then run GPTQ (<see cref="Quantizer.Gptq(IEnumerable{Nn.QModule},
    /// QuantizationPlan, Func{Tensor}, IProgress{QuantizationProgress}?)"/>) over more: the planner runs the model a
    /// few hundred times, GPTQ's Hessians need one pass per layer and gain from more data.
    /// </summary>
    /// <param name="options">GPTQ's settings for those layers (e.g. act-order with asymmetric targets).</param>
    /// <returns>A new plan; its <see cref="MeasuredModelError"/> is NaN, since the planner measured other rounding,
    /// and each layer keeps the errors measured for its original choice.</returns>
    public QuantizationPlan WithGptq(GptqOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new QuantizationPlan(Layers.Select(l => l.Choice.Weights is QType q && q.Info().IsPacked
            ? l with { Choice = l.Choice with { Gptq = options } }
            : l), TargetBitsPerWeight);
    }

    /// <summary>The choice for a layer, or null when the plan does not list it.</summary>
    /// <param name="path">The module path ("encoder.layer.0.attention.self.query").</param>
    public LayerPlan? For(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return _byPath.GetValueOrDefault(path);
    }

    /// <inheritdoc />
    public override string ToString()
    {
        CultureInfo c = CultureInfo.InvariantCulture;
        string measured = double.IsNaN(MeasuredModelError)
            ? ""
            : string.Create(c, $", measured {MeasuredModelError:E2}");
        var lines = new List<string>
        {
            string.Create(c, $"Plan: {Layers.Count} layer(s), {BitsPerWeight:F2} bits/weight (target " +
                             $"{TargetBitsPerWeight:F2}), estimated output error {EstimatedModelError:E2}{measured}"),
        };
        lines.AddRange(Layers.Select(l => string.Create(c,
            $"  {l.Path}: {l.Choice}, {l.BitsPerWeight:F2} bits/weight, {l.Parameters:N0} weights, layer error " +
            $"{l.LayerError:E2}, model error {l.ModelError:E2}")));
        return string.Join(Environment.NewLine, lines);
    }
}
