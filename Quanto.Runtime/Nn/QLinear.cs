using Quanto.Functional;
using Quanto.Quantization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Nn;

/// <summary>A Linear layer with quantized weights (and optionally activations). Bias stays float.</summary>
[QuantizedLayer(typeof(Linear), Operation = "linear", WeightRank = 2, QuantizedByCli = true)]
public sealed class QLinear : QModule
{
    /// <summary>Wraps <paramref name="source"/> with <paramref name="settings"/> (the registry's factory).</summary>
    /// <param name="source">The float layer.</param>
    /// <param name="settings">Qtypes, group size, optimizer and the layer's path.</param>
    public QLinear(Linear source, LayerSettings settings)
        : this(source, (settings ?? throw new ArgumentNullException(nameof(settings))).Weights,
            settings.Activations, settings.GroupSize, settings.Optimizer, settings.Path)
    {
    }

    /// <summary>Wraps <paramref name="source"/>, sharing its weight and bias until <see cref="QModule.Freeze"/>.</summary>
    /// <param name="source">The float layer.</param>
    /// <param name="weights">Weight qtype (null: float weights, activations only).</param>
    /// <param name="activations">Activation qtype or null.</param>
    /// <param name="groupSize">Requested group size for 2/4-bit weights.</param>
    /// <param name="optimizer">Weight optimizer.</param>
    /// <param name="path">The module's path in its model, for messages.</param>
    public QLinear(Linear source, QType? weights, QType? activations = null, int? groupSize = null,
        Optimizer? optimizer = null, string? path = null)
        : base(nameof(QLinear), weights, activations, groupSize, optimizer)
    {
        ArgumentNullException.ThrowIfNull(source);
        in_features = source.in_features;
        out_features = source.out_features;
        Path = path ?? Path;
        register_parameter("weight", source.weight);
        if (source.bias is not null) register_parameter("bias", source.bias);
    }

#pragma warning disable IDE1006 // TorchSharp naming
    /// <summary>Input features K.</summary>
    public long in_features { get; }

    /// <summary>Output features N.</summary>
    public long out_features { get; }
#pragma warning restore IDE1006

    /// <inheritdoc />
    public override Tensor Compute(QActivation input) => RunLinear(
        input,
        weight => nn.functional.linear(input.Value, weight, FloatBias),
        prepared => QuantizedOps.linear_dynamic(input.Value, prepared, FloatBias, EffectiveDynamicActivations),
        prepared => QuantizedOps.linear_int8(input.Codes!, input.Scale!, prepared, FloatBias, input.Value.dtype));

    /// <inheritdoc />
    public override string Describe() => $"QLinear '{Path}' ({in_features} -> {out_features})";

    /// <inheritdoc />
    protected override long[] ExpectedWeightShape() => [out_features, in_features];
}
