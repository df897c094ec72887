using Quanto.Functional;
using Quanto.Kernels;
using Quanto.Quantization;
using Quanto.Tensors;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Nn;

/// <summary>
/// A Conv1d layer with quantized weights (and optionally activations): weights per output channel (8-bit) or
/// group-wise along in/groups*kernel (2/4-bit), as QConv2d. Frozen, it runs through the backend's
/// <see cref="IQuantKernels.Conv2d"/> as a height-1 2-D convolution: input (batch, in, 1, length), weight viewed as
/// (out, in/groups, 1, k) without a copy. Every padding mode of TorchSharp's Conv1d. Bias stays float.
/// optimum-quanto has no quantized Conv1d.
/// </summary>
[QuantizedLayer(typeof(Conv1d), Operation = "conv1d", WeightRank = 3, QuantizedByCli = true)]
public sealed class QConv1d : QConvolution
{
    /// <summary>Wraps <paramref name="source"/> with <paramref name="settings"/> (the registry's factory).</summary>
    /// <param name="source">The float layer.</param>
    /// <param name="settings">Qtypes, group size, optimizer and the layer's path.</param>
    public QConv1d(Conv1d source, LayerSettings settings)
        : this(source, (settings ?? throw new ArgumentNullException(nameof(settings))).Weights,
            settings.Activations, settings.GroupSize, settings.Optimizer, settings.Path)
    {
    }

    /// <summary>Wraps <paramref name="source"/>, sharing its weight and bias until frozen.</summary>
    /// <param name="source">The float convolution.</param>
    /// <param name="weights">Weight qtype (null: float weights, activations only).</param>
    /// <param name="activations">Activation qtype or null.</param>
    /// <param name="groupSize">Requested group size for 2/4-bit weights (along in/groups*k).</param>
    /// <param name="optimizer">Weight optimizer.</param>
    /// <param name="path">The module's path in its model, for messages.</param>
    public QConv1d(Conv1d source, QType? weights, QType? activations = null, int? groupSize = null,
        Optimizer? optimizer = null, string? path = null)
        : base(nameof(QConv1d), source, weights, activations, groupSize, optimizer, path)
    {
    }

    private protected override Tensor FloatConvolution(Tensor input, Tensor weight) =>
        nn.functional.conv1d(input, weight, FloatBias, stride[0], padding[0], dilation[0], groups);

    private protected override Tensor KernelConvolution(Tensor input, PreparedWeight weight)
    {
        using var scope = NewDisposeScope();
        return QuantizedOps.conv2d(input.unsqueeze(2), weight, FloatBias, [1, stride[0]], [0, padding[0]],
            [1, dilation[0]], groups).squeeze(2).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    /// <remarks>(out, in/groups, k) viewed as (out, in/groups, 1, k): the same codes and scales, another shape (the
    /// rows, and so the groups, are unchanged).</remarks>
    protected override QuantizedWeight KernelView(QuantizedWeight weight)
    {
        long[] shape = [weight.Shape[0], weight.Shape[1], 1, weight.Shape[2]];
        return weight switch
        {
            WeightQBytesTensor bytes => new WeightQBytesTensor(bytes.QType, bytes.Data.reshape(shape),
                bytes.Scale.reshape(shape[0], 1, 1, 1), bytes.Axis),
            WeightQBitsTensor bits => new WeightQBitsTensor(bits.QType, shape, bits.GroupSize, bits.Packed.alias(),
                bits.Scale.alias(), bits.Shift.alias()),
            _ => throw new NotSupportedException($"{Describe()}: unknown quantized weight {weight}."),
        };
    }
}
