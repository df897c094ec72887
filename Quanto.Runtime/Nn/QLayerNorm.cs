using Quanto.Functional;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Nn;

/// <summary>LayerNorm with quantized activations; its weight and bias stay float (as optimum-quanto's QLayerNorm).</summary>
public sealed class QLayerNorm : QModule
{
    private readonly Parameter? _weight;
    private readonly Parameter? _bias;

    /// <summary>Wraps <paramref name="source"/>, sharing its parameters.</summary>
    public QLayerNorm(LayerNorm source, QType? activations, string? path = null)
        : base(nameof(QLayerNorm), null, activations, null, null)
    {
        ArgumentNullException.ThrowIfNull(source);
        Path = path ?? Path;
        normalized_shape = source.normalized_shape;
        eps = source.eps;
        _weight = source.weight;
        _bias = source.bias;
        if (_weight is not null) register_parameter("weight", _weight);
        if (_bias is not null) register_parameter("bias", _bias);
    }

#pragma warning disable IDE1006 // TorchSharp naming
    /// <summary>The normalized trailing shape.</summary>
    public long[] normalized_shape { get; }

    /// <summary>Epsilon added to the variance.</summary>
    public double eps { get; }
#pragma warning restore IDE1006

    /// <inheritdoc />
    public override Parameter? FloatWeight => _weight;

    /// <inheritdoc />
    public override Parameter? FloatBias => _bias;

    /// <inheritdoc />
    public override Tensor Compute(QActivation input) =>
        QuantizedOps.layer_norm(input.Value, normalized_shape, _weight, _bias, eps);

    /// <inheritdoc />
    public override string Describe() => $"QLayerNorm '{Path}' ({string.Join("x", normalized_shape)})";

    /// <inheritdoc />
    protected override long[] ExpectedWeightShape() => normalized_shape;

    /// <inheritdoc />
    protected override void ReleaseFloatWeight()
    {
    }
}
