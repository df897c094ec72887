using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Float;

/// <summary>The number of activation rows a <see cref="FloatGemvKernel"/> instantiation handles (1 to 3), a
/// constant the JIT folds, so the unused accumulators and their FMAs disappear.</summary>
internal interface IRowCount
{
    /// <summary>The row count.</summary>
    static abstract int Rows { get; }
}

/// <summary>One activation row.</summary>
internal readonly struct OneRow : IRowCount
{
    /// <inheritdoc />
    public static int Rows => 1;
}

/// <summary>Two activation rows.</summary>
internal readonly struct TwoRows : IRowCount
{
    /// <inheritdoc />
    public static int Rows => 2;
}

/// <summary>Three activation rows.</summary>
internal readonly struct ThreeRows : IRowCount
{
    /// <inheritdoc />
    public static int Rows => 3;
}

/// <summary>
/// y[r, n] = x[r] · W[n] (+ bias[n]) for 1-3 activation rows on a contiguous row-major float32 weight (N x K), read in
/// place. Weight rows are taken one after another, so a range of rows is one sequential read of memory; each weight
/// vector is multiplied into every activation row (four accumulator chains per activation row, the activations stay
/// in L1: 8 KiB a row at K = 2048). Float32 throughout: lane-wise FMAs, the lanes summed, then the scalar tail.
/// </summary>
/// <remarks>
/// The read is prefetched <see cref="PrefetchFloats"/> ahead, a line per 16 floats, running on into the next row:
/// the hardware prefetchers stop at each 4 KiB page (a float32 row of 2048 is two of them) and must retrain, and the
/// software prefetch keeps the next page's lines in flight across that gap (see <see cref="GemvKernel"/>). Compiled
/// fully optimised at the first call (AggressiveOptimization), as the other kernels are.
/// </remarks>
internal static unsafe class FloatGemvKernel
{
    /// <summary>How far ahead of the read the prefetches run, in floats (2 KiB).</summary>
    public const int PrefetchFloats = 512;

    private const int LineFloats = 16; // one 64-byte cache line

    /// <summary>Output columns [<paramref name="n0"/>, <paramref name="n1"/>) of y (TR.Rows x n, row-major) for
    /// x (TR.Rows x k, row-major) and the weight w (n x k, row-major); bias is null or n floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run<TVec, TW, TR>(float* w, int k, int n, float* x, float* y, float* bias, int n0, int n1)
        where TVec : unmanaged
        where TW : struct, ISimdWidth<TVec>
        where TR : struct, IRowCount
    {
        int lanes = Unsafe.SizeOf<TVec>() / sizeof(float);
        int step = 4 * lanes; // one vector into each of the four chains
        float* x1 = x + k, x2 = x + 2 * (long)k;
        for (int row = n0; row < n1; row++)
        {
            float* p = w + (long)row * k;
            TVec a0 = default, a1 = default, a2 = default, a3 = default; // activation row 0
            TVec b0 = default, b1 = default, b2 = default, b3 = default; // row 1
            TVec c0 = default, c1 = default, c2 = default, c3 = default; // row 2
            int i = 0;
            for (; i + step <= k; i += step)
            {
                for (int line = 0; line < step; line += LineFloats) Prefetch(p + i + line + PrefetchFloats);
                Step<TVec, TW, TR>(p + i, x + i, x1 + i, x2 + i, ref a0, ref b0, ref c0);
                Step<TVec, TW, TR>(p + i + lanes, x + i + lanes, x1 + i + lanes, x2 + i + lanes, ref a1, ref b1, ref c1);
                Step<TVec, TW, TR>(p + i + 2 * lanes, x + i + 2 * lanes, x1 + i + 2 * lanes, x2 + i + 2 * lanes,
                    ref a2, ref b2, ref c2);
                Step<TVec, TW, TR>(p + i + 3 * lanes, x + i + 3 * lanes, x1 + i + 3 * lanes, x2 + i + 3 * lanes,
                    ref a3, ref b3, ref c3);
            }
            for (; i + lanes <= k; i += lanes) Step<TVec, TW, TR>(p + i, x + i, x1 + i, x2 + i, ref a0, ref b0, ref c0);
            float b = bias == null ? 0 : bias[row];
            y[row] = Finish<TVec, TW>(a0, a1, a2, a3, p, x, i, k, bias != null, b);
            if (TR.Rows > 1) y[n + row] = Finish<TVec, TW>(b0, b1, b2, b3, p, x1, i, k, bias != null, b);
            if (TR.Rows > 2) y[2 * (long)n + row] = Finish<TVec, TW>(c0, c1, c2, c3, p, x2, i, k, bias != null, b);
        }
    }

    /// <summary>One weight vector times the same vector of each activation row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step<TVec, TW, TR>(float* w, float* x0, float* x1, float* x2, ref TVec a, ref TVec b,
        ref TVec c)
        where TVec : unmanaged
        where TW : struct, ISimdWidth<TVec>
        where TR : struct, IRowCount
    {
        TVec v = Unsafe.ReadUnaligned<TVec>(w);
        a = TW.MultiplyAdd(v, Unsafe.ReadUnaligned<TVec>(x0), a);
        if (TR.Rows > 1) b = TW.MultiplyAdd(v, Unsafe.ReadUnaligned<TVec>(x1), b);
        if (TR.Rows > 2) c = TW.MultiplyAdd(v, Unsafe.ReadUnaligned<TVec>(x2), c);
    }

    /// <summary>The four chains' lanes summed, the scalar tail from <paramref name="i"/> to k, then the bias.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Finish<TVec, TW>(TVec a0, TVec a1, TVec a2, TVec a3, float* w, float* x, int i, int k,
        bool hasBias, float bias)
        where TVec : unmanaged
        where TW : struct, ISimdWidth<TVec>
    {
        float sum = TW.Sum(TW.Add(TW.Add(a0, a1), TW.Add(a2, a3)));
        for (; i < k; i++) sum += w[i] * x[i];
        return hasBias ? sum + bias : sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(float* p)
    {
        if (Sse.IsSupported) Sse.Prefetch0(p);
    }
}
