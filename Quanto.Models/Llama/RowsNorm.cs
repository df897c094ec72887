using Quanto.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Quanto.Models.Llama;

/// <summary>
/// <see cref="RmsNorm"/> of a few float32 rows on the CPU in one pass over raw memory: weight (x / sqrt(mean(x^2) +
/// eps)), with the same roundings as the libtorch ops it replaces (the sum of squares in float32, eps added in
/// float32, x times the reciprocal root, then times the weight) except the summation order.
/// </summary>
/// <remarks>
/// The libtorch form is six ops and a dispose scope per norm (square, mean, add_, rsqrt_, mul, mul): measured on a
/// 2 vCPU Zen 4 in a TinyLlama-1.1B-shaped int4 decode step, its 45 norms took 2.1 ms of 41 (47 us each, the ops'
/// dispatch on a cache the GEMVs had just swept). Inputs of more than <see cref="MaxElements"/> elements (a prompt)
/// keep the libtorch form, whose ops are worth their dispatch there.
/// </remarks>
internal static unsafe class RowsNorm
{
    /// <summary>Elements up to which the one-pass form runs (16 rows of an 8192-wide model).</summary>
    internal const long MaxElements = 1 << 17;

    /// <summary>True when <see cref="Apply"/> computes this norm: float32 contiguous CPU input and weight, at most
    /// <see cref="MaxElements"/> elements, no gradient to record.</summary>
    internal static bool Runs(Tensor x, Tensor weight) =>
        x.dtype == ScalarType.Float32 && weight.dtype == ScalarType.Float32 &&
        x.device_type == DeviceType.CPU && weight.device_type == DeviceType.CPU &&
        x.numel() <= MaxElements && x.dim() >= 1 && x.size(-1) == weight.numel() &&
        x.is_contiguous() && weight.is_contiguous() &&
        !(is_grad_enabled() && (x.requires_grad || weight.requires_grad));

    /// <summary>The norm of every row (last dimension) of <paramref name="x"/>, in a new tensor of its shape.</summary>
    internal static Tensor Apply(Tensor x, Tensor weight, double eps)
    {
        Tensor output = empty(TensorSizes.Of(x), dtype: ScalarType.Float32);
        int width = checked((int)x.size(-1));
        long rows = width == 0 ? 0 : x.numel() / width;
        float* input = TensorMemory.Floats(x), scale = TensorMemory.Floats(weight), result = TensorMemory.Floats(output);
        for (long r = 0; r < rows; r++)
        {
            float* row = input + r * width, target = result + r * width;
            float mean = FloatSpans.Dot(row, row, width) / width;
            float inverse = 1 / MathF.Sqrt(mean + (float)eps);
            for (int i = 0; i < width; i++) target[i] = scale[i] * (row[i] * inverse);
        }
        GC.KeepAlive(x);
        GC.KeepAlive(weight);
        return output;
    }
}
