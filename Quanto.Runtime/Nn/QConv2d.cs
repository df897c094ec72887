using Quanto.Functional;
using Quanto.Kernels;
using Quanto.Quantization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Nn;

/// <summary>A Conv2d layer with quantized weights (and optionally activations). Frozen, it runs through the
/// backend's <see cref="IQuantKernels.Conv2d"/> (by default unfold + the backend's quantized matmul; optimum-quanto
/// has no quantized convolution kernel). Every padding mode of TorchSharp's Conv2d. Bias stays float.</summary>
[QuantizedLayer(typeof(Conv2d), Operation = "conv2d", WeightRank = 4, QuantizedByCli = true)]
public sealed class QConv2d : QConvolution
{
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
    /// <param name="source">The float convolution.</param>
    /// <param name="weights">Weight qtype (null: float weights, activations only).</param>
    /// <param name="activations">Activation qtype or null.</param>
    /// <param name="groupSize">Requested group size for 2/4-bit weights (along in/groups*kh*kw).</param>
    /// <param name="optimizer">Weight optimizer.</param>
    /// <param name="path">The module's path in its model, for messages.</param>
    /// <exception cref="NotSupportedException">Padding "same" with a non-zero padding mode that pads height and width
    /// differently (TorchSharp's own Conv2d pads the wrong dimensions there).</exception>
    public QConv2d(Conv2d source, QType? weights, QType? activations = null, int? groupSize = null,
        Optimizer? optimizer = null, string? path = null)
        : base(nameof(QConv2d), source, weights, activations, groupSize, optimizer, path)
    {
    }

    /// <summary>
    /// Convolution weights up to this many elements (256 KB as float) run as libtorch's direct convolution on a float
    /// copy made once at preparation (the torch backend). A convolution reuses each weight (output pixels x batch)
    /// times, so it is compute-bound: for small weights the direct convolution beats unfold + the quantized matmul
    /// (measured 2x on the MNIST-sized CNN), and the copy costs little. Larger weights keep only their quantized form.
    /// QConv1d uses the same limit.
    /// </summary>
    public const long DirectConvolutionLimit = 64 * 1024;

    private protected override Tensor FloatConvolution(Tensor input, Tensor weight) =>
        nn.functional.conv2d(input, weight, FloatBias, stride, padding, dilation, groups);

    private protected override Tensor KernelConvolution(Tensor input, PreparedWeight weight) =>
        QuantizedOps.conv2d(input, weight, FloatBias, stride, padding, dilation, groups);
}
