using System.Numerics;
using System.Runtime.CompilerServices;

namespace Quanto.Models;

/// <summary>SIMD float32 kernels over raw memory shared by the models' one-pass CPU paths (RowsNorm,
/// DecodeAttention).</summary>
internal static unsafe class FloatSpans
{
    /// <summary>The dot product of <paramref name="n"/> floats at <paramref name="a"/> and <paramref name="b"/>,
    /// accumulated in float32 lanes of <see cref="Vector{T}"/> width.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Dot(float* a, float* b, int n)
    {
        int i = 0;
        float sum = 0;
        if (Vector.IsHardwareAccelerated && n >= Vector<float>.Count)
        {
            Vector<float> acc = Vector<float>.Zero;
            for (; i <= n - Vector<float>.Count; i += Vector<float>.Count)
                acc += Unsafe.ReadUnaligned<Vector<float>>(a + i) * Unsafe.ReadUnaligned<Vector<float>>(b + i);
            sum = Vector.Sum(acc);
        }
        for (; i < n; i++) sum += a[i] * b[i];
        return sum;
    }

    /// <summary>y += alpha x over <paramref name="n"/> floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Axpy(float alpha, float* x, float* y, int n)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && n >= Vector<float>.Count)
        {
            var a = new Vector<float>(alpha);
            for (; i <= n - Vector<float>.Count; i += Vector<float>.Count)
            {
                Unsafe.WriteUnaligned(y + i,
                    Unsafe.ReadUnaligned<Vector<float>>(y + i) + a * Unsafe.ReadUnaligned<Vector<float>>(x + i));
            }
        }
        for (; i < n; i++) y[i] += alpha * x[i];
    }
}
