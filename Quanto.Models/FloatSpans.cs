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

    /// <summary>The dot product of <paramref name="n"/> floats with fused multiply-adds into two
    /// <see cref="Vector{T}"/> accumulators (a shorter dependency chain than <see cref="Dot"/>'s one).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float FusedDot(float* a, float* b, int n)
    {
        int i = 0, w = Vector<float>.Count;
        float sum = 0;
        if (Vector.IsHardwareAccelerated && n >= w)
        {
            Vector<float> even = Vector<float>.Zero, odd = Vector<float>.Zero;
            for (; i + 2 * w <= n; i += 2 * w)
            {
                even = Vector.FusedMultiplyAdd(Unsafe.ReadUnaligned<Vector<float>>(a + i),
                    Unsafe.ReadUnaligned<Vector<float>>(b + i), even);
                odd = Vector.FusedMultiplyAdd(Unsafe.ReadUnaligned<Vector<float>>(a + i + w),
                    Unsafe.ReadUnaligned<Vector<float>>(b + i + w), odd);
            }
            if (i + w <= n)
            {
                even = Vector.FusedMultiplyAdd(Unsafe.ReadUnaligned<Vector<float>>(a + i),
                    Unsafe.ReadUnaligned<Vector<float>>(b + i), even);
                i += w;
            }
            sum = Vector.Sum(even + odd);
        }
        for (; i < n; i++) sum = MathF.FusedMultiplyAdd(a[i], b[i], sum);
        return sum;
    }

    /// <summary>x[i] = exp(x[i] - shift) over <paramref name="n"/> floats, a vector at a time
    /// (<see cref="Vector.Exp(Vector{float})"/>); returns their sum.</summary>
    internal static float ExpShifted(float* x, int n, float shift)
    {
        int i = 0, w = Vector<float>.Count;
        float sum = 0;
        if (Vector.IsHardwareAccelerated && n >= w)
        {
            var by = new Vector<float>(shift);
            Vector<float> total = Vector<float>.Zero;
            for (; i + w <= n; i += w)
            {
                Vector<float> e = Vector.Exp(Unsafe.ReadUnaligned<Vector<float>>(x + i) - by);
                Unsafe.WriteUnaligned(x + i, e);
                total += e;
            }
            sum = Vector.Sum(total);
        }
        for (; i < n; i++)
        {
            float e = MathF.Exp(x[i] - shift);
            x[i] = e;
            sum += e;
        }
        return sum;
    }
}
