using Quanto.Kernels;
using Quanto.Quantization;
using Quanto.Tensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Nn;

/// <summary>
/// What <see cref="QConv1d"/> and <see cref="QConv2d"/> share: weights per output channel / group-wise along
/// in*kernel, every padding mode of TorchSharp's convolutions (zeros, reflect, replicate, circular; numeric, "same"
/// or "valid"), batched and unbatched inputs, and input checks made before libtorch sees the input. Frozen, the
/// convolution runs through the backend contract (<see cref="IQuantKernels.Conv2d"/>); bias stays float.
/// </summary>
public abstract class QConvolution : QModule
{
    private readonly ConvolutionPadding _padding;
    private readonly long[] _weightShape;

    private protected QConvolution(string name, Convolution source, QType? weights, QType? activations,
        int? groupSize, Optimizer? optimizer, string? path)
        : base(name, weights, activations, groupSize, optimizer)
    {
        Path = path ?? Path;
        try
        {
            ArgumentNullException.ThrowIfNull(source);
            _padding = ConvolutionPadding.From(source, $"{name} '{Path}'");
        }
        catch
        {
            Dispose(); // the scale buffers; nothing of the source is registered yet
            throw;
        }
        _weightShape = source.weight.shape;
        in_channels = source.in_channels;
        out_channels = source.out_channels;
        kernel_size = source.kernel_size;
        stride = source.stride;
        padding = _padding.Convolution;
        padding_mode = source.padding_mode;
        dilation = source.dilation;
        groups = source.groups;
        register_parameter("weight", source.weight);
        if (source.bias is not null) register_parameter("bias", source.bias);
    }

#pragma warning disable IDE1006 // TorchSharp naming
    /// <summary>Input channels.</summary>
    public long in_channels { get; }

    /// <summary>Output channels.</summary>
    public long out_channels { get; }

    /// <summary>Kernel size per spatial dimension.</summary>
    public long[] kernel_size { get; }

    /// <summary>Stride per spatial dimension.</summary>
    public long[] stride { get; }

    /// <summary>The zero padding the convolution itself applies per spatial dimension (0 where the input is padded
    /// explicitly first: non-zero padding modes, or asymmetric "same" padding).</summary>
    public long[] padding { get; }

    /// <summary>The float module's padding mode (Zeros and Constant pad with zeros).</summary>
    public PaddingModes padding_mode { get; }

    /// <summary>Dilation per spatial dimension.</summary>
    public long[] dilation { get; }

    /// <summary>Number of channel groups.</summary>
    public long groups { get; }
#pragma warning restore IDE1006

    /// <inheritdoc />
    /// <exception cref="ArgumentException">The input is not a float (batch, in_channels, spatial...) or
    /// (in_channels, spatial...) tensor, or is too small for the padding or the kernel (checked before libtorch sees
    /// it).</exception>
    public override Tensor Compute(QActivation input)
    {
        Tensor x = input.Value;
        int dims = kernel_size.Length;
        bool unbatched = x.dim() == dims + 1;
        if (x.dim() != dims + 2 && !unbatched || x.shape[unbatched ? 0 : 1] != in_channels)
        {
            string spatial = dims == 1 ? "length" : "height, width";
            throw new ArgumentException(
                $"{Describe()} expects input (batch, {in_channels}, {spatial}) or ({in_channels}, {spatial}); got " +
                $"{QuantizedWeight.FormatShape(x.shape)}.", nameof(input));
        }
        if (!x.is_floating_point())
        {
            throw new ArgumentException(
                $"{Describe()} expects a float input; got {x.dtype} {QuantizedWeight.FormatShape(x.shape)}.",
                nameof(input));
        }
        using var scope = NewDisposeScope();
        Tensor padded = _padding.Apply(unbatched ? x.unsqueeze(0) : x, Describe());
        var stubbed = new QActivation(padded, null, input.Scale);
        Tensor y = RunLinear(stubbed, weight => FloatConvolution(padded, weight), prepared =>
            KernelConvolution(padded, prepared), null);
        return (unbatched ? y.squeeze(0) : y).MoveToOuterDisposeScope();
    }

    /// <summary>The convolution of an already padded batched input with a float weight (training and QAT).</summary>
    private protected abstract Tensor FloatConvolution(Tensor input, Tensor weight);

    /// <summary>The convolution of an already padded batched input on the backend's prepared weight.</summary>
    private protected abstract Tensor KernelConvolution(Tensor input, PreparedWeight weight);

    /// <inheritdoc />
    /// <remarks>Weights up to <see cref="QConv2d.DirectConvolutionLimit"/> elements run as libtorch's direct
    /// convolution on a float copy (the torch backend).</remarks>
    protected override IQuantKernels SelectBackend(QuantizedWeight weight, Tensor input) =>
        QuantKernels.Forced is null && weight.NumberOfElements <= QConv2d.DirectConvolutionLimit
            ? TorchKernels.Instance
            : base.SelectBackend(weight, input);

    /// <inheritdoc />
    public override string Describe()
    {
        string kernel = string.Join("x", kernel_size);
        bool zeros = _padding.Mode == PaddingModes.Constant && _padding.Explicit is null;
        string pad = zeros ? "" : $", {_padding.Description}";
        return $"{GetType().Name} '{Path}' ({in_channels} -> {out_channels}, kernel {kernel}{pad})";
    }

    /// <inheritdoc />
    protected override long[] ExpectedWeightShape() => _weightShape;
}
