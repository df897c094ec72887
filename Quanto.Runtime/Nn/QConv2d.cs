using Quanto.Functional;
using Quanto.Kernels;
using Quanto.Quantization;
using Quanto.Tensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Nn;

/// <summary>A Conv2d layer with quantized weights (and optionally activations). Frozen, it runs as unfold + the
/// backend's quantized matmul (optimum-quanto has no quantized convolution kernel). Bias stays float.</summary>
[QuantizedLayer(typeof(Conv2d), Operation = "conv2d", WeightRank = 4, QuantizedByCli = true)]
public sealed class QConv2d : QModule
{
    private readonly long[] _weightShape;

    /// <summary>Wraps <paramref name="source"/> with <paramref name="settings"/> (the registry's factory).</summary>
    /// <param name="source">The float layer.</param>
    /// <param name="settings">Qtypes, group size, optimizer and the layer's path.</param>
    /// <exception cref="NotSupportedException">See the other constructor.</exception>
    public QConv2d(Conv2d source, LayerSettings settings)
        : this(source, (settings ?? throw new ArgumentNullException(nameof(settings))).Weights,
            settings.Activations, settings.GroupSize, settings.Optimizer, settings.Path)
    {
    }

    /// <summary>Wraps <paramref name="source"/>, sharing its weight and bias until frozen.</summary>
    /// <exception cref="NotSupportedException">Padding modes other than zeros, or string padding ("same").</exception>
    public QConv2d(Conv2d source, QType? weights, QType? activations = null, int? groupSize = null,
        Optimizer? optimizer = null, string? path = null)
        : base(nameof(QConv2d), weights, activations, groupSize, optimizer)
    {
        ArgumentNullException.ThrowIfNull(source);
        Path = path ?? Path;
        if (source.padding_mode != PaddingModes.Zeros || source.padding_type is not null)
        {
            throw new NotSupportedException(
                $"QConv2d '{Path}' supports numeric zero padding; this Conv2d uses " +
                $"{(source.padding_type is null ? source.padding_mode.ToString() : source.padding_type.ToString())}.");
        }
        _weightShape = source.weight.shape;
        stride = source.stride;
        padding = source.padding ?? [0, 0];
        dilation = source.dilation;
        groups = source.groups;
        register_parameter("weight", source.weight);
        if (source.bias is not null) register_parameter("bias", source.bias);
    }

#pragma warning disable IDE1006 // TorchSharp naming
    /// <summary>Stride (h, w).</summary>
    public long[] stride { get; }

    /// <summary>Zero padding (h, w).</summary>
    public long[] padding { get; }

    /// <summary>Dilation (h, w).</summary>
    public long[] dilation { get; }

    /// <summary>Number of channel groups.</summary>
    public long groups { get; }
#pragma warning restore IDE1006

    /// <inheritdoc />
    public override Tensor Compute(QActivation input) => RunLinear(
        input,
        weight => nn.functional.conv2d(input.Value, weight, FloatBias, stride, padding, dilation, groups),
        prepared => QuantizedOps.conv2d(input.Value, prepared, FloatBias, stride, padding, dilation, groups),
        null);

    /// <summary>
    /// Convolution weights up to this many elements (256 KB as float) run as libtorch's direct convolution on a float
    /// copy made once at preparation (the torch backend). A convolution reuses each weight (output pixels x batch)
    /// times, so it is compute-bound: for small weights the direct convolution beats unfold + the quantized matmul
    /// (measured 2x on the MNIST-sized CNN), and the copy costs little. Larger weights keep only their quantized form.
    /// </summary>
    public const long DirectConvolutionLimit = 64 * 1024;

    /// <inheritdoc />
    protected override IQuantKernels SelectBackend(QuantizedWeight weight, Tensor input) =>
        QuantKernels.Forced is null && weight.NumberOfElements <= DirectConvolutionLimit
            ? TorchKernels.Instance
            : base.SelectBackend(weight, input);

    /// <inheritdoc />
    public override string Describe() =>
        $"QConv2d '{Path}' ({_weightShape[1] * groups} -> {_weightShape[0]}, kernel {_weightShape[2]}x{_weightShape[3]})";

    /// <inheritdoc />
    protected override long[] ExpectedWeightShape() => _weightShape;
}
