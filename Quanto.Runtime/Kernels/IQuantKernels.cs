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
    /// y = x̂ · dequant(W)ᵀ (+ bias), where x̂ is x quantized to int8 on the fly as <paramref name="mode"/> says (per
    /// token for qint8 weights, per block for qint4 / qint2; see <see cref="DynamicActivations"/>). x is (..., K)
    /// float; y is (..., N) in x's dtype. Backends with integer kernels compute the dot products exactly in int32;
    /// the default quantizes and dequantizes x with TorchSharp ops and calls <see cref="Linear"/>: the same values
    /// up to float rounding, without the speed. Weights the mode does not cover (float8) run <see cref="Linear"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes disagree (message names both shapes).</exception>
    /// <exception cref="ArgumentOutOfRangeException">An undefined mode.</exception>
    Tensor LinearDynamic(Tensor input, PreparedWeight weight, Tensor? bias, DynamicActivations mode) =>
        DynamicActivationReference.Linear(this, input, weight, bias, mode);

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
