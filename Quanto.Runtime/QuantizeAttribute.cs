namespace Quanto;

/// <summary>
/// Marks a partial TorchSharp model class (the class default) or one of its layer fields (a per-layer override) for
/// ahead-of-time quantization. For an annotated class, Quanto.Generators writes <c>ForwardQuantized</c> (the class's
/// <c>forward</c> with explicit quant stub, quantized op and dequant stub per layer), <c>Quantize</c>,
/// <c>Calibrate</c>, <c>Freeze</c>, <c>SaveQuantized</c>/<c>LoadQuantized</c> and a compile-time
/// <c>QuantizationMap</c>. Properties left unset inherit the class default; a class that sets neither
/// <see cref="Weights"/> nor <see cref="Activations"/> quantizes weights to <see cref="QType.QInt8"/>.
/// <code>
/// [Quantize(Weights = QInt4, Group = 128)]
/// public partial class Classifier : Module&lt;Tensor, Tensor&gt; { ... }
/// </code>
/// The generator reads the named arguments at compile time; the properties only remember whether they were set. The
/// attributes choose which layers are quantized and their default settings; the generated
/// <c>Quantize(weights, activations, groupSize, optimizer)</c> overrides those settings at run time for every one of
/// these layers (see <see cref="Generated.ModelQuantization"/>).
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Field, AllowMultiple = false, Inherited = false)]
public sealed class QuantizeAttribute : Attribute
{
    private QType? _weights;
    private QType? _activations;
    private int? _group;

    /// <summary>Weight qtype (qint2, qint4, qint8 or a float8 type).</summary>
    public QType Weights
    {
        get => _weights ?? QType.QInt8;
        set => _weights = value;
    }

    /// <summary>Activation qtype (qint8 or a float8 type); unset: activations stay float.</summary>
    public QType Activations
    {
        get => _activations ?? default;
        set => _activations = value;
    }

    /// <summary>Group size for 2/4-bit weights: a positive multiple of 8 (unset: 128, with optimum-quanto's
    /// fallback to 96, 64, 32 or per channel). Ignored, with warning QNT005, for 8-bit weights.</summary>
    public int Group
    {
        get => _group ?? 0;
        set => _group = value;
    }

    /// <summary>On the class: fnmatch patterns of the layer fields to quantize (unset: all).</summary>
    public string[]? Include { get; set; }

    /// <summary>On the class: fnmatch patterns of the layer fields to keep float.</summary>
    public string[]? Exclude { get; set; }

    /// <summary>True when <see cref="Weights"/> was set.</summary>
    public bool HasWeights => _weights is not null;

    /// <summary>True when <see cref="Activations"/> was set.</summary>
    public bool HasActivations => _activations is not null;

    /// <summary>True when <see cref="Group"/> was set.</summary>
    public bool HasGroup => _group is not null;
}

/// <summary>Keeps a layer field of a [Quantize] class float: the generated ForwardQuantized calls it as written.</summary>
[AttributeUsage(AttributeTargets.Field, AllowMultiple = false, Inherited = false)]
public sealed class NoQuantizeAttribute : Attribute;
