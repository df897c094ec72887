using Quanto.Nn;
using Quanto.Quantization;
using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto.Generated;

/// <summary>
/// Chooses the settings of each quantized twin that <see cref="ModelQuantization"/> builds. The generated code names
/// every layer with its [Quantize] settings, fixed at compile time, and the plan makes the twin:
/// <see cref="FromAttributes"/> keeps those settings, <see cref="Override"/> replaces them by one run-time choice for
/// every layer (optionally only those whose module path matches include / exclude patterns),
/// <see cref="FromLayerPlan"/> takes each layer's choice from a <see cref="QuantizationPlan"/>, and
/// <see cref="FromCheckpoint"/> takes each module's settings from a checkpoint's quantization map
/// (generated <c>LoadQuantized</c>). Nested [Quantize] models are quantized with the same plan. The set of layers is
/// at most the attributes': a layer they keep float has no twin to build.
/// </summary>
internal sealed class QuantizePlan
{
    private readonly Optimizer? _optimizer;
    private readonly Settings? _override;
    private readonly QuantizationMap? _map;
    private readonly IReadOnlyDictionary<string, int> _groups;
    private readonly string _source;
    private readonly string[] _include;
    private readonly string[] _exclude;
    private QuantizationPlan? _plan;
    private QType? _planActivations;

    private QuantizePlan(Optimizer? optimizer, Settings? overridden, QuantizationMap? map,
        IReadOnlyDictionary<string, int>? groups, string source, string[]? include = null, string[]? exclude = null)
    {
        _optimizer = optimizer;
        _override = overridden;
        _map = map;
        _groups = groups ?? new Dictionary<string, int>();
        _source = source;
        _include = include ?? [];
        _exclude = exclude ?? [];
    }

    /// <summary>Each layer keeps its [Quantize] settings (what <c>Quantize()</c> does).</summary>
    /// <param name="optimizer">Weight optimizer (null: the qtype's default).</param>
    public static QuantizePlan FromAttributes(Optimizer? optimizer = null) => new(optimizer, null, null, null, "");

    /// <summary>
    /// Every layer the attributes quantize gets these settings instead of its own, as
    /// <see cref="Quantizer.Quantize"/> would give it; a LayerNorm keeps float weights and takes
    /// <paramref name="activations"/> (with none, it gets no twin and runs float).
    /// </summary>
    /// <param name="weights">Weight qtype (null: float weights, activations only).</param>
    /// <param name="activations">Activation qtype (qint8 or a float8 type), or null.</param>
    /// <param name="groupSize">Group size of 2/4-bit weights (null: 128, with optimum-quanto's fallback).</param>
    /// <param name="optimizer">Weight optimizer (null: the qtype's default).</param>
    /// <exception cref="ArgumentException">Neither qtype given, or 2/4-bit activations.</exception>
    /// <param name="include">Module path patterns (fnmatch, as <see cref="Quantizer.Quantize"/>'s) of the layers to
    /// quantize; all when null or empty.</param>
    /// <param name="exclude">Module path patterns of layers to keep float (no twin: they run float).</param>
    /// <exception cref="ArgumentOutOfRangeException">An undefined qtype, or a group size that is not a positive
    /// multiple of 8.</exception>
    public static QuantizePlan Override(QType? weights, QType? activations = null, int? groupSize = null,
        Optimizer? optimizer = null, IEnumerable<string>? include = null, IEnumerable<string>? exclude = null)
    {
        QModule.CheckRequest(weights, activations, groupSize);
        return new QuantizePlan(optimizer, new Settings(weights, activations, groupSize), null, null, "",
            include?.ToArray(), exclude?.ToArray());
    }

    /// <summary>
    /// Each layer the plan lists gets its choice (weight qtype, group size, optimizer) and <paramref name="activations"/>,
    /// as <see cref="QuantizationPlanExtensions.Quantize(nn.Module, QuantizationPlan, QType?)"/> gives it on an eager
    /// model; layers it does not list, or keeps float without activations, get no twin and run float.
    /// </summary>
    /// <param name="plan">The plan (<see cref="Quantizer.Plan(SensitivityReport, double)"/>).</param>
    /// <param name="activations">Activation qtype for every planned layer (null: float activations).</param>
    /// <exception cref="ArgumentException">2/4-bit activations, or a choice its layer cannot take.</exception>
    public static QuantizePlan FromLayerPlan(QuantizationPlan plan, QType? activations)
    {
        ArgumentNullException.ThrowIfNull(plan);
        foreach (LayerPlan layer in plan.Layers)
            QModule.CheckSettings(layer.Choice.Weights, activations, layer.Choice.GroupSize);
        return new QuantizePlan(null, null, null, null, "") { _plan = plan, _planActivations = activations };
    }

    /// <summary>
    /// Each layer gets the qtypes the checkpoint's quantization map gives its module path, and the group size its
    /// metadata records (optimum-quanto's files: none, re-derived from the shape as they do). A layer the map does
    /// not list gets no twin and loads as a float layer (it was saved float: excluded when quantized, or a LayerNorm
    /// with float activations), as <see cref="Quantizer.Requantize(nn.Module, StateDict, QuantizationMap)"/> leaves
    /// it.
    /// </summary>
    /// <param name="checkpoint">The open checkpoint.</param>
    /// <exception cref="QuantoFormatException">The checkpoint's group-size metadata is malformed.</exception>
    public static QuantizePlan FromCheckpoint(QuantizedCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        return new QuantizePlan(null, null, checkpoint.QuantizationMap,
            QuantizedModel.StoredGroupSizes(checkpoint.StateDict), checkpoint.Path);
    }

    /// <summary>The quantized twin of one layer, or null when the plan keeps it float (excluded by the plan's
    /// patterns, not in the checkpoint's map, or a kind whose weights stay float without quantized activations).
    /// </summary>
    /// <param name="kind">The layer's kind.</param>
    /// <param name="layer">The user's float layer (the twin shares its parameters).</param>
    /// <param name="path">The layer's module path ("block.fc1").</param>
    /// <param name="weights">The layer's [Quantize] weight qtype.</param>
    /// <param name="activations">The layer's [Quantize] activation qtype.</param>
    /// <param name="groupSize">The layer's [Quantize] group size.</param>
    /// <exception cref="QuantoFormatException">(checkpoint plans) The map does not quantize this layer as a layer of
    /// its kind can be.</exception>
    public QModule? Twin(LayerKind kind, nn.Module layer, string path, QType? weights, QType? activations,
        int? groupSize)
    {
        if (!Selected(path)) return null;
        Settings s = Choose(path, new Settings(weights, activations, groupSize), kind);
        if (s.Activations is null && (s.Weights is null || !kind.QuantizesWeights)) return null;
        return kind.Create(layer,
            new LayerSettings(s.Weights, s.Activations, s.GroupSize, s.Optimizer ?? _optimizer, path));
    }

    private Settings Choose(string path, Settings attributes, LayerKind kind)
    {
        bool floatWeights = !kind.QuantizesWeights;
        if (_override is Settings o) return floatWeights ? o with { Weights = null, GroupSize = null } : o;
        if (_plan is not null)
        {
            if (_plan.For(path) is not { Choice: var choice }) return new Settings(null, null, null);
            var planned = new Settings(choice.Weights, _planActivations, choice.GroupSize, choice.Optimizer);
            return floatWeights ? planned with { Weights = null, GroupSize = null } : planned;
        }
        if (_map is null) return floatWeights ? attributes with { Weights = null, GroupSize = null } : attributes;
        return FromMap(path, kind);
    }

    private Settings FromMap(string path, LayerKind kind)
    {
        bool floatWeights = !kind.QuantizesWeights;
        const string Advice = "Load the file into a model whose [Quantize] attributes quantize the same layers, or " +
                              "requantize an eager model from it (Quantizer.Requantize).";
        if (!_map!.TryGet(path, out QuantizationSpec spec)) return new Settings(null, null, null);
        if (floatWeights && spec.Weights is QType w)
        {
            throw new QuantoFormatException(_source,
                $"module '{path}' is a {kind.Name}, whose weights stay float; the file quantizes them to " +
                $"{w.QuantoName()}. {Advice}");
        }
        int? group = _groups.TryGetValue(path, out int g) ? g : null;
        try
        {
            QModule.CheckRequest(spec.Weights, spec.Activations, group);
        }
        catch (ArgumentException e)
        {
            throw new QuantoFormatException(_source,
                $"module '{path}' cannot be built from the file's quantization map: {Reason(e)} {Advice}", e);
        }
        return new Settings(spec.Weights, spec.Activations, group);
    }

    /// <summary>True when the plan's include / exclude patterns leave <paramref name="path"/> to quantize.</summary>
    private bool Selected(string path) =>
        (_include.Length == 0 || _include.Any(p => Fnmatch.IsMatch(path, p))) &&
        !_exclude.Any(p => Fnmatch.IsMatch(path, p));

    /// <summary>The message without .NET's " (Parameter 'x')" suffix, which names no parameter of the caller's.
    /// </summary>
    private static string Reason(ArgumentException e) => e.ParamName is null
        ? e.Message
        : e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal);

    private sealed record Settings(QType? Weights, QType? Activations, int? GroupSize, Optimizer? Optimizer = null);
}
