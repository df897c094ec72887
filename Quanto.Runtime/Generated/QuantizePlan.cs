using Quanto.Nn;
using Quanto.Quantization;
using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto.Generated;

/// <summary>
/// Chooses the settings of each quantized twin that a generated <c>Quantize</c> builds. The generated code names
/// every layer with its [Quantize] settings, fixed at compile time, and asks the plan for the twin:
/// <see cref="FromAttributes"/> keeps those settings, <see cref="Override"/> replaces them by one run-time choice for
/// every layer, and <see cref="FromCheckpoint"/> takes each module's settings from a checkpoint's quantization map
/// (generated <c>LoadQuantized</c>). Nested [Quantize] models are quantized with the same plan. The set of layers is
/// the attributes' in every case: a layer they keep float has no twin to build.
/// </summary>
public sealed class QuantizePlan
{
    private readonly Optimizer? _optimizer;
    private readonly Settings? _override;
    private readonly QuantizationMap? _map;
    private readonly IReadOnlyDictionary<string, int> _groups;
    private readonly string _source;

    private QuantizePlan(Optimizer? optimizer, Settings? overridden, QuantizationMap? map,
        IReadOnlyDictionary<string, int>? groups, string source)
    {
        _optimizer = optimizer;
        _override = overridden;
        _map = map;
        _groups = groups ?? new Dictionary<string, int>();
        _source = source;
    }

    /// <summary>Each layer keeps its [Quantize] settings (what <c>Quantize()</c> does).</summary>
    /// <param name="optimizer">Weight optimizer (null: the qtype's default).</param>
    public static QuantizePlan FromAttributes(Optimizer? optimizer = null) => new(optimizer, null, null, null, "");

    /// <summary>
    /// Every layer the attributes quantize gets these settings instead of its own, as
    /// <see cref="Quantizer.Quantize"/> would give it; a LayerNorm keeps float weights and takes
    /// <paramref name="activations"/> (with none, its twin passes values through and is not saved).
    /// </summary>
    /// <param name="weights">Weight qtype (null: float weights, activations only).</param>
    /// <param name="activations">Activation qtype (qint8 or a float8 type), or null.</param>
    /// <param name="groupSize">Group size of 2/4-bit weights (null: 128, with optimum-quanto's fallback).</param>
    /// <param name="optimizer">Weight optimizer (null: the qtype's default).</param>
    /// <exception cref="ArgumentException">Neither qtype given, or 2/4-bit activations.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An undefined qtype, or a group size that is not a positive
    /// multiple of 8.</exception>
    public static QuantizePlan Override(QType? weights, QType? activations = null, int? groupSize = null,
        Optimizer? optimizer = null)
    {
        QModule.CheckRequest(weights, activations, groupSize);
        return new QuantizePlan(optimizer, new Settings(weights, activations, groupSize), null, null, "");
    }

    /// <summary>
    /// Each layer gets the qtypes the checkpoint's quantization map gives its module path, and the group size its
    /// metadata records (optimum-quanto's files: none, re-derived from the shape as they do). A LayerNorm the map
    /// does not list gets a pass-through twin (it was saved with float activations).
    /// </summary>
    /// <param name="checkpoint">The open checkpoint.</param>
    /// <exception cref="QuantoFormatException">The checkpoint's group-size metadata is malformed.</exception>
    public static QuantizePlan FromCheckpoint(QuantizedCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        return new QuantizePlan(null, null, checkpoint.QuantizationMap,
            QuantizedModel.StoredGroupSizes(checkpoint.StateDict), checkpoint.Path);
    }

    /// <summary>The quantized twin of one layer, of the layer's kind (<see cref="LayerKinds"/>).</summary>
    /// <param name="layer">The user's float layer (the twin shares its parameters).</param>
    /// <param name="path">The layer's module path ("block.fc1").</param>
    /// <param name="weights">The layer's [Quantize] weight qtype (ignored by kinds whose weights stay float).</param>
    /// <param name="activations">The layer's [Quantize] activation qtype.</param>
    /// <param name="groupSize">The layer's [Quantize] group size.</param>
    /// <exception cref="ArgumentException"><paramref name="layer"/> is of no registered kind.</exception>
    /// <exception cref="QuantoFormatException">(checkpoint plans) The map does not quantize this layer as a layer of
    /// its kind can be.</exception>
    public QModule Twin(nn.Module layer, string path, QType? weights, QType? activations, int? groupSize)
    {
        ArgumentNullException.ThrowIfNull(layer);
        LayerKind kind = LayerKinds.For(layer) ?? throw new ArgumentException(
            $"'{path}' is a {layer.GetType().Name}, which has no quantized counterpart ({LayerKinds.Names} have).",
            nameof(layer));
        Settings s = Choose(path, new Settings(weights, activations, groupSize), kind);
        return kind.Create(layer, new LayerSettings(s.Weights, s.Activations, s.GroupSize, _optimizer, path));
    }

    private Settings Choose(string path, Settings attributes, LayerKind kind)
    {
        bool floatWeights = !kind.QuantizesWeights;
        if (_override is Settings o) return floatWeights ? o with { Weights = null, GroupSize = null } : o;
        if (_map is null) return floatWeights ? attributes with { Weights = null, GroupSize = null } : attributes;
        return FromMap(path, kind);
    }

    private Settings FromMap(string path, LayerKind kind)
    {
        bool floatWeights = !kind.QuantizesWeights;
        const string Advice = "Load the file into a model whose [Quantize] attributes quantize the same layers, or " +
                              "requantize an eager model from it (Quantizer.Requantize).";
        if (!_map!.TryGet(path, out QuantizationSpec spec))
        {
            if (floatWeights) return new Settings(null, null, null);
            throw new QuantoFormatException(_source,
                $"module '{path}' is quantized by the model's [Quantize] attributes, but the file's quantization " +
                $"map does not list it (it was saved float). {Advice}");
        }
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

    /// <summary>The message without .NET's " (Parameter 'x')" suffix, which names no parameter of the caller's.
    /// </summary>
    private static string Reason(ArgumentException e) => e.ParamName is null
        ? e.Message
        : e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal);

    private sealed record Settings(QType? Weights, QType? Activations, int? GroupSize);
}
