using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Kernels;

/// <summary>
/// Convolutions through a prepared weight, shared by the backends: the default of <see cref="IQuantKernels.Conv2d"/>
/// (unfold + the backend's matmul), the output-size check every backend runs, and the direct convolution on a float
/// weight.
/// </summary>
internal static class Convolutions
{
    public static Tensor ByUnfold(IQuantKernels backend, Tensor input, PreparedWeight weight, Tensor? bias,
        long[] stride, long[] padding, long[] dilation, long groups)
    {
        using var scope = NewDisposeScope();
        if (groups != 1) return Direct(input, weight.Source.Dequantize(), bias, stride, padding, dilation, groups);
        ReadOnlySpan<long> shape = weight.Source.Shape;
        long batch = input.shape[0], kh = shape[2], kw = shape[3];
        (long outH, long outW) = OutputSize(input, shape, stride, padding, dilation);
        // (B, C*kh*kw, L) -> (B*L, C*kh*kw): each row one receptive field, in the weight's (in, kh, kw) order.
        Tensor columns = nn.functional.unfold(input, (kh, kw), (dilation[0], dilation[1]), (padding[0], padding[1]),
            (stride[0], stride[1]));
        Tensor rows = columns.transpose(1, 2).reshape(-1, columns.shape[1]);
        Tensor y = backend.Linear(rows, weight, bias);
        return y.reshape(batch, outH * outW, -1).transpose(1, 2).reshape(batch, -1, outH, outW).contiguous()
            .MoveToOuterDisposeScope();
    }

    /// <summary>The output height and width of a convolution of <paramref name="input"/> with a weight of
    /// <paramref name="weightShape"/>.</summary>
    /// <exception cref="ArgumentException">The input is smaller than the kernel after padding (checked here because
    /// libtorch may abort the process on a bad shape rather than throw).</exception>
    public static (long Height, long Width) OutputSize(Tensor input, ReadOnlySpan<long> weightShape, long[] stride,
        long[] padding, long[] dilation)
    {
        long kh = weightShape[2], kw = weightShape[3];
        long outH = (input.shape[2] + 2 * padding[0] - dilation[0] * (kh - 1) - 1) / stride[0] + 1;
        long outW = (input.shape[3] + 2 * padding[1] - dilation[1] * (kw - 1) - 1) / stride[1] + 1;
        if (outH <= 0 || outW <= 0)
        {
            throw new ArgumentException(
                $"conv2d input {QuantizedWeight.FormatShape(input.shape)} is smaller than the {kh}x{kw} kernel " +
                "after padding.", nameof(input));
        }
        return (outH, outW);
    }

    /// <summary>F.conv2d on a float weight, in the input's dtype and on its device.</summary>
    public static Tensor Direct(Tensor input, Tensor weight, Tensor? bias, long[] stride, long[] padding,
        long[] dilation, long groups)
    {
        using var scope = NewDisposeScope();
        return nn.functional.conv2d(input, weight.to(input.dtype, input.device), bias?.to(input.dtype, input.device),
            stride, padding, dilation, groups).MoveToOuterDisposeScope();
    }
}
