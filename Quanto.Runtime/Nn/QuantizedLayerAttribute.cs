namespace Quanto.Nn;

/// <summary>
/// Registers a quantized module type as the quantized counterpart of one TorchSharp layer type: this attribute is
/// the whole registration of a layer kind (optimum-quanto's <c>register_qmodule</c>). <see cref="LayerKinds"/> reads
/// it at run time (eager <see cref="Quantizer.Quantize"/>, generated code, serialization, the CLI) and the
/// <c>[Quantize]</c> source generator reads it from the referenced runtime at compile time, so a new kind is one new
/// <see cref="QModule"/> subclass carrying this attribute and a constructor <c>(TFloat source, LayerSettings
/// settings)</c>:
/// <code>
/// [QuantizedLayer(typeof(Linear), Operation = "linear", WeightRank = 2, QuantizedByCli = true)]
/// public sealed class QLinear : QModule
/// {
///     public QLinear(Linear source, LayerSettings settings) : ...
/// }
/// </code>
/// </summary>
/// <param name="floatType">The TorchSharp layer type this module replaces (exact type: <c>typeof(Linear)</c>).</param>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class QuantizedLayerAttribute(Type floatType) : Attribute
{
    /// <summary>The TorchSharp layer type this module replaces.</summary>
    public Type FloatType { get; } = floatType;

    /// <summary>The quantized operation in words ("linear", "conv2d", "layer norm"), for generated code's comments
    /// and messages.</summary>
    public string Operation { get; set; } = "";

    /// <summary>
    /// False for kinds whose weights stay float and whose activations alone are quantized (LayerNorm, as in
    /// optimum-quanto): such a layer is replaced only when activations are quantized, and its saved state holds its
    /// float weight.
    /// </summary>
    public bool QuantizesWeights { get; set; } = true;

    /// <summary>Rank of the weight tensor this kind quantizes (Linear 2, Conv1d 3, Conv2d 4): part of the saved layout
    /// (a quantized weight is stored per output channel, axis 0, rows of all the other dimensions); 0 for kinds
    /// whose weights stay float.</summary>
    public int WeightRank { get; set; }

    /// <summary>
    /// The CLI's tensor rule: whether <c>quanto quantize</c>, which sees tensors and not modules, quantizes every
    /// float <c>*.weight</c> tensor of <see cref="WeightRank"/> dimensions by default. Kinds whose weights cannot be
    /// told apart from another kind's by rank alone leave it false.
    /// </summary>
    public bool QuantizedByCli { get; set; }
}
