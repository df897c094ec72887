using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Kernels;

/// <summary>
/// The one interface every matmul backend implements (TorchSharp fallback, managed SIMD CPU, ILGPU). Modules and
/// generated code never call a backend directly: they prepare a weight once, then call <see cref="Linear"/> or
/// <see cref="LinearInt8"/> with that prepared form.
/// </summary>
public interface IQuantKernels
{
    /// <summary>Short name for reports ("torch", "cpu-avx512", "ilgpu-cuda").</summary>
    string Name { get; }

    /// <summary>True when this backend can run <paramref name="weight"/> for inputs of <paramref name="inputDtype"/>
    /// on <paramref name="device"/>.</summary>
    bool CanRun(QuantizedWeight weight, ScalarType inputDtype, Device device);

    /// <summary>
    /// The backend's form of a weight, made once (at Freeze or first use): a kernel-specific layout, device upload,
    /// precomputed scale*shift. Never written to disk; the canonical <see cref="PreparedWeight.Source"/> is.
    /// </summary>
    /// <exception cref="NotSupportedException">The backend cannot run this weight (check <see cref="CanRun"/>).</exception>
    PreparedWeight Prepare(QuantizedWeight weight);

    /// <summary>
    /// y = x · dequant(W)ᵀ (+ bias). x is (..., K) float (Float32 or BFloat16), W is (N, K); y is (..., N) in x's dtype.
    /// Bias, if any, is float (N).
    /// </summary>
    /// <exception cref="ArgumentException">Shapes disagree (message names both shapes).</exception>
    Tensor Linear(Tensor input, PreparedWeight weight, Tensor? bias);

    /// <summary>
    /// W8A8: y = (xq · Wqᵀ) * (xScale * wScale) (+ bias) with exact int32 accumulation. <paramref name="inputCodes"/>
    /// is int8 (..., K) quantized per tensor with scalar <paramref name="inputScale"/>; W is qint8.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes disagree, or W is not qint8.</exception>
    Tensor LinearInt8(Tensor inputCodes, Tensor inputScale, PreparedWeight weight, Tensor? bias, ScalarType outputDtype);

    /// <summary>
    /// 2-D convolution with a prepared (out, in/groups, kh, kw) weight; input (batch, in, h, w) float, output in the
    /// input's dtype. The default is an unfold (im2col) followed by this backend's <see cref="Linear"/>, so every
    /// backend's matmul serves convolutions; grouped convolutions have no unfold form and run F.conv2d on the
    /// dequantized weight. A backend with a better way (a float copy, a direct kernel) implements it.
    /// The caller (QuantizedOps.conv2d) has checked the input against the weight.
    /// </summary>
    /// <exception cref="ArgumentException">The input is smaller than the kernel after padding.</exception>
    Tensor Conv2d(Tensor input, PreparedWeight weight, Tensor? bias, long[] stride, long[] padding, long[] dilation,
        long groups) =>
        Convolutions.ByUnfold(this, input, weight, bias, stride, padding, dilation, groups);
}

/// <summary>The default convolution of <see cref="IQuantKernels.Conv2d"/>.</summary>
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

/// <summary>A weight in one backend's form. Dispose to free the backend's copy (not the source). It is usually made
/// inside a forward pass: implementations must detach the tensors they keep from the caller's dispose scope.</summary>
public abstract class PreparedWeight : IDisposable
{
    /// <summary>Wraps the canonical weight this was prepared from.</summary>
    protected PreparedWeight(QuantizedWeight source, IQuantKernels backend)
    {
        Source = source;
        Backend = backend;
    }

    /// <summary>The canonical (optimum-quanto layout) weight; what is saved.</summary>
    public QuantizedWeight Source { get; }

    /// <summary>The backend that made this and must run it.</summary>
    public IQuantKernels Backend { get; }

    /// <summary>Output features N (Source.Shape[0]).</summary>
    public long OutFeatures => Source.Shape[0];

    /// <summary>Input features K (elements per output row).</summary>
    public long InFeatures => Source.NumberOfElements / Source.Shape[0];

    /// <summary>Frees the backend's copy.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees backend resources.</summary>
    /// <param name="disposing">True from <see cref="Dispose()"/>.</param>
    protected virtual void Dispose(bool disposing)
    {
    }
}
