using Quanto.Functional;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Nn;

/// <summary>LayerNorm with quantized activations; its weight and bias stay float (as optimum-quanto's QLayerNorm).</summary>
[QuantizedLayer(typeof(LayerNorm), Operation = "layer norm", QuantizesWeights = false)]
public sealed class QLayerNorm : QModule
{
    // TorchSharp's LayerNorm disposes its weight and bias from its finalizer too (Dispose(false)), unlike Linear
    // and Conv2d: the swapped-out module must live as long as this one, which shares those parameters.
    private readonly LayerNorm _source;

    /// <summary>Wraps <paramref name="source"/> with <paramref name="settings"/>' activations (the registry's factory;
    /// the weights stay float).</summary>
    /// <param name="source">The float layer.</param>
    /// <param name="settings">The activation qtype and the layer's path.</param>
    public QLayerNorm(LayerNorm source, LayerSettings settings)
        : this(source, (settings ?? throw new ArgumentNullException(nameof(settings))).Activations, settings.Path)
    {
    }

    /// <summary>Wraps <paramref name="source"/>, sharing its parameters.</summary>
    public QLayerNorm(LayerNorm source, QType? activations, string? path = null)
        : base(nameof(QLayerNorm), null, activations, null, null)
    {
        ArgumentNullException.ThrowIfNull(source);
        _source = source;
        Path = path ?? Path;
        normalized_shape = source.normalized_shape;
        eps = source.eps;
        if (source.weight is not null) register_parameter("weight", source.weight);
        if (source.bias is not null) register_parameter("bias", source.bias);
    }

#pragma warning disable IDE1006 // TorchSharp naming
    /// <summary>The normalized trailing shape.</summary>
    public long[] normalized_shape { get; }

    /// <summary>Epsilon added to the variance.</summary>
    public double eps { get; }
#pragma warning restore IDE1006

    /// <inheritdoc />
    public override Tensor Compute(QActivation input) =>
        QuantizedOps.layer_norm(input.Value, normalized_shape, FloatWeight, FloatBias, eps);

    /// <inheritdoc />
    public override string Describe() => $"QLayerNorm '{Path}' ({string.Join("x", normalized_shape)})";

    /// <inheritdoc />
    protected override long[] ExpectedWeightShape() => normalized_shape;
}
