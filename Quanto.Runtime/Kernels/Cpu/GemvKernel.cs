using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu;

/// <summary>
/// Few-row products (GEMV), every SIMD width: weight rows are decoded straight into FMAs against each activation
/// row, so the weight streams from memory once. Two weight rows go through the activations together, so that a long
/// activation row (11008 floats = 43 KiB, more than L1) comes from L2 half as often. Per group:
/// s * (q · x) - t * sum(x), four accumulator chains per row.
/// </summary>
/// <remarks>
/// The pair being read is prefetched one pair ahead. Rows are a few KiB, so each pair starts on a new 4 KiB page,
/// where the hardware prefetchers stop and must retrain; without the software prefetch a rotating 4096² int4 GEMV
/// ran at about half the bandwidth of a plain read on Zen 4 (Quanto.Bench measures it). The drivers and micro-kernels
/// are compiled fully optimised at their first call (AggressiveOptimization): under tiered compilation a new kernel
/// instantiation would run as tier-0 code, which inlines nothing (every decoder step a call), until call counting
/// promotes it, and call counting waits until the process stops meeting new methods, which in an application that
/// keeps loading models can take seconds.
/// </remarks>
internal static unsafe class GemvKernel
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run<TVec, TW, TD>(CpuPreparedWeight w, CpuActivations x, int n0, int n1, float* y, float* bias)
        where TVec : unmanaged
        where TW : struct, ISimdWidth<TVec>
        where TD : struct, IBlockDecoder<TVec>
    {
        if (TD.BlockBytes != w.BlockBytes || TD.BlockWeights != w.BlockWeights)
            throw new InvalidOperationException($"Kernel block size does not match the {w.Format} layout.");
        for (int n = n0; n < n1; n += 2)
        {
            bool pair = n + 1 < n1;
            for (int r = 0; r < x.Rows; r++)
            {
                // Prefetching is for the first activation row only: later rows find the pair in cache.
                (float first, float second) = Rows<TVec, TW, TD>(w, x, n, pair ? n + 1 : n, r, prefetch: r == 0);
                long index = (long)r * w.N + n;
                y[index] = bias == null ? first : first + bias[n];
                if (pair) y[index + 1] = bias == null ? second : second + bias[n + 1];
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (float, float) Rows<TVec, TW, TD>(CpuPreparedWeight w, CpuActivations x, int na, int nb, int r,
        bool prefetch)
        where TVec : unmanaged
        where TW : struct, ISimdWidth<TVec>
        where TD : struct, IBlockDecoder<TVec>
    {
        int groups = w.Groups;
        long groupBytes = (long)w.BlocksPerGroup * TD.BlockBytes;
        byte* p = w.Codes + (long)na * w.RowBytes;
        long toB = (long)(nb - na) * w.RowBytes;
        long ahead = prefetch ? toB + w.RowBytes : 0; // the same place in the next pair (0: no prefetch)
        float* xp = x.X + (long)r * x.Stride;
        float* scalesA = w.Scales + (long)na * groups, scalesB = w.Scales + (long)nb * groups;
        TVec totalA = default, totalB = default;
        for (int g = 0; g < groups; g++)
        {
            byte* end = p + groupBytes;
            TVec a0 = default, a1 = default, a2 = default, a3 = default;
            TVec b0 = default, b1 = default, b2 = default, b3 = default;
            for (; p + 2 * TD.BlockBytes <= end; p += 2 * TD.BlockBytes, xp += 2 * TD.BlockWeights)
            {
                if (ahead != 0) Prefetch(p + ahead, p + toB + ahead, 2 * TD.BlockBytes);
                TD.Accumulate(p, xp, ref a0, ref a1);
                TD.Accumulate(p + toB, xp, ref b0, ref b1);
                TD.Accumulate(p + TD.BlockBytes, xp + TD.BlockWeights, ref a2, ref a3);
                TD.Accumulate(p + toB + TD.BlockBytes, xp + TD.BlockWeights, ref b2, ref b3);
            }
            if (p < end)
            {
                if (ahead != 0) Prefetch(p + ahead, p + toB + ahead, 2 * TD.BlockBytes);
                TD.Accumulate(p, xp, ref a0, ref a1);
                TD.Accumulate(p + toB, xp, ref b0, ref b1);
                p += TD.BlockBytes;
                xp += TD.BlockWeights;
            }
            totalA = TW.MultiplyAdd(TW.Add(TW.Add(a0, a1), TW.Add(a2, a3)), TW.Broadcast(scalesA[g]), totalA);
            totalB = TW.MultiplyAdd(TW.Add(TW.Add(b0, b1), TW.Add(b2, b3)), TW.Broadcast(scalesB[g]), totalB);
        }
        float sumA = TW.Sum(totalA), sumB = TW.Sum(totalB);
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

    /// <summary>Prefetches <paramref name="bytes"/> at each of two places, line by line (at least one line).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(byte* a, byte* b, int bytes)
    {
        if (!Sse.IsSupported) return;
        for (int offset = 0; offset < bytes; offset += 64)
        {
            Sse.Prefetch0(a + offset);
            Sse.Prefetch0(b + offset);
        }
    }
}
