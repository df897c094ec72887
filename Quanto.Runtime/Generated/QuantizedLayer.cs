using Quanto.Nn;
using static TorchSharp.torch;

namespace Quanto.Generated;

/// <summary>
/// One quantizable layer of a [Quantize] model: its field name and [Quantize] settings (fixed at compile time), and,
/// once the model's <c>Quantize</c> has run, the user's layer, its module path and its quantized twin (the kind's
/// quantized module, sharing the layer's parameters). Generated <c>ForwardQuantized</c> runs the layer through its
/// three steps: <see cref="InputStub"/> (quant stub), <see cref="Compute"/> (the quantized op), <see cref="OutputStub"/>
/// (dequant stub). A layer the run-time settings keep float (a LayerNorm without quantized activations) has no twin:
/// the steps then pass the input through and run the float layer.
/// </summary>
public sealed class QuantizedLayer
{
    /// <summary>A layer slot with its [Quantize] settings.</summary>
    /// <param name="name">The field name, the last segment of the module path ("fc1"; "heads.0" in a list).</param>
    /// <param name="weights">Weight qtype, or null.</param>
    /// <param name="activations">Activation qtype, or null.</param>
    /// <param name="groupSize">Group size of 2/4-bit weights, or null for the default.</param>
    public QuantizedLayer(string name, QType? weights = null, QType? activations = null, int? groupSize = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
        Weights = weights;
        Activations = activations;
        GroupSize = groupSize;
    }

    /// <summary>The field name ("fc1"), or "heads.0" for an item of a ModuleList field.</summary>
    public string Name { get; }

    /// <summary>The [Quantize] weight qtype.</summary>
    public QType? Weights { get; }

    /// <summary>The [Quantize] activation qtype.</summary>
    public QType? Activations { get; }

    /// <summary>The [Quantize] group size.</summary>
    public int? GroupSize { get; }

    /// <summary>The module path ("block.fc1") once quantized, else null.</summary>
    public string? Path { get; private set; }

    /// <summary>The quantized twin, or null (not quantized, or kept float by the run-time settings).</summary>
    public QModule? Twin { get; private set; }

    /// <summary>The user's layer, once quantized.</summary>
    internal nn.Module? Layer { get; private set; }

    /// <summary>The layer's kind, once quantized.</summary>
    internal LayerKind? Kind { get; private set; }

    /// <summary>The model that owns this slot, for messages.</summary>
    internal string Owner { get; set; } = "";

    /// <summary>True between the model's Quantize and DisposeQuantized.</summary>
    public bool IsBound => Layer is not null;

    /// <summary>Quant stub: calibrates and quantizes the input (the twin's <see cref="QModule.InputStub"/>).</summary>
    /// <exception cref="InvalidOperationException">The model is not quantized.</exception>
    public QActivation InputStub(Tensor input)
    {
        CheckBound();
        return Twin is QModule twin ? twin.InputStub(input) : new QActivation(input, null, null);
    }

    /// <summary>The quantized op with this layer's quantized weight (or the float layer without a twin).</summary>
    /// <exception cref="InvalidOperationException">The model is not quantized.</exception>
    public Tensor Compute(QActivation input)
    {
        CheckBound();
        return Twin is QModule twin ? twin.Compute(input) : ((nn.Module<Tensor, Tensor>)Layer!).forward(input.Value);
    }

    /// <summary>Dequant stub (the twin's <see cref="QModule.OutputStub"/>).</summary>
    /// <exception cref="InvalidOperationException">The model is not quantized.</exception>
    public Tensor OutputStub(Tensor output)
    {
        CheckBound();
        return Twin is QModule twin ? twin.OutputStub(output) : output;
    }

    /// <inheritdoc />
    public override string ToString() => Twin?.Describe() ?? $"{Path ?? Name} (float)";

    internal void Bind(nn.Module layer, LayerKind kind, string path, QModule? twin)
    {
        Layer = layer;
        Kind = kind;
        Path = path;
        Twin = twin;
    }

    /// <summary>Disposes what the twin owns (not the float parameters it shares) and unbinds the slot.</summary>
    internal void Release()
    {
        Twin?.Abandon();
        Twin = null;
        Layer = null;
        Kind = null;
        Path = null;
    }

    private void CheckBound()
    {
        if (Layer is not null) return;
        throw new InvalidOperationException(
            $"'{Name}' of {Owner} is not quantized: call Quantize() (or LoadQuantized(path)) on the model first; " +
            "DisposeQuantized() releases the quantized layers.");
    }
}
