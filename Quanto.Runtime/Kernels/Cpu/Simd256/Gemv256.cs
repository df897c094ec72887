using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Simd256;

/// <summary>
/// Few-row products (GEMV): weight rows are decoded straight into FMAs against each activation row, so the weight
/// streams from memory once. Two weight rows go through the activations together, so that a long activation row
/// (11008 floats = 43 KiB, more than L1) comes from L2 half as often. Per group: s * (q · x) - t * sum(x), four
/// accumulator chains per row. Block sizes come from the decoder as JIT-time constants.
/// </summary>
internal static unsafe class Gemv256
{
    public static void Run<TD>(CpuPreparedWeight w, CpuActivations x, int n0, int n1, float* y, float* bias)
        where TD : struct, IDecoder256
    {
        if (TD.BlockBytes != w.BlockBytes || TD.BlockWeights != w.BlockWeights)
            throw new InvalidOperationException($"Kernel block size does not match the {w.Format} layout.");
        for (int n = n0; n < n1; n += 2)
        {
            bool pair = n + 1 < n1;
            for (int r = 0; r < x.Rows; r++)
            {
                (float first, float second) = Rows<TD>(w, x, n, pair ? n + 1 : n, r);
                long index = (long)r * w.N + n;
                y[index] = bias == null ? first : first + bias[n];
                if (pair) y[index + 1] = bias == null ? second : second + bias[n + 1];
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (float, float) Rows<TD>(CpuPreparedWeight w, CpuActivations x, int na, int nb, int r)
        where TD : struct, IDecoder256
    {
        int groups = w.Groups;
        long groupBytes = (long)w.BlocksPerGroup * TD.BlockBytes;
        byte* p = w.Codes + (long)na * w.RowBytes;
        long toB = (long)(nb - na) * w.RowBytes;
        float* xp = x.X + (long)r * x.Stride;
        float* scalesA = w.Scales + (long)na * groups, scalesB = w.Scales + (long)nb * groups;
        Vector256<float> totalA = Vector256<float>.Zero, totalB = Vector256<float>.Zero;
        for (int g = 0; g < groups; g++)
        {
            byte* end = p + groupBytes;
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
            for (; p + 2 * TD.BlockBytes <= end; p += 2 * TD.BlockBytes, xp += 2 * TD.BlockWeights)
            {
                TD.Accumulate(p, xp, ref a0, ref a1);
                TD.Accumulate(p + toB, xp, ref b0, ref b1);
                TD.Accumulate(p + TD.BlockBytes, xp + TD.BlockWeights, ref a2, ref a3);
                TD.Accumulate(p + toB + TD.BlockBytes, xp + TD.BlockWeights, ref b2, ref b3);
            }
            if (p < end)
            {
                TD.Accumulate(p, xp, ref a0, ref a1);
                TD.Accumulate(p + toB, xp, ref b0, ref b1);
                p += TD.BlockBytes;
                xp += TD.BlockWeights;
            }
            totalA = Fma.MultiplyAdd((a0 + a1) + (a2 + a3), Vector256.Create(scalesA[g]), totalA);
            totalB = Fma.MultiplyAdd((b0 + b1) + (b2 + b3), Vector256.Create(scalesB[g]), totalB);
        }
        float sumA = Vector256.Sum(totalA), sumB = Vector256.Sum(totalB);
        if (x.GroupSums != null)
        {
            float* sums = x.GroupSums + (long)r * groups;
            float* shiftsA = w.Shifts + (long)na * groups, shiftsB = w.Shifts + (long)nb * groups;
            float shiftA = 0, shiftB = 0;
            for (int g = 0; g < groups; g++)
            {
                shiftA += shiftsA[g] * sums[g];
                shiftB += shiftsB[g] * sums[g];
            }
            sumA -= shiftA;
            sumB -= shiftB;
        }
        return (sumA, sumB);
    }
}
