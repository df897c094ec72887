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
/// place. Four weight rows go through the activations together (4 x rows accumulators, one per pair), so each
/// activation vector loaded serves four weight rows and the activations (8 KiB a row at K = 2048, in L1) are read a
/// quarter as often as the weight. Float32 throughout: lane-wise FMAs, then the lanes summed, then the tail.
/// </summary>
/// <remarks>
/// While a block of four rows is read, the same offset of the next block (4 rows further) is prefetched, one cache
/// line per row per 16 floats. A row of a large weight is a few KiB, so the four streams cross a 4 KiB page every
/// few hundred loads, where the hardware prefetchers stop and must retrain (see <see cref="GemvKernel"/>); the
/// software prefetch keeps the next block's lines in flight across those boundaries. Compiled fully optimised at
/// the first call (AggressiveOptimization), as the other kernels are.
/// </remarks>
internal static unsafe class FloatGemvKernel
{
    /// <summary>Weight rows read together.</summary>
    public const int BlockRows = 4;

    private const int LineFloats = 16; // one 64-byte cache line

    /// <summary>Output columns [<paramref name="n0"/>, <paramref name="n1"/>) of y (TR.Rows x n, row-major) for
    /// x (TR.Rows x k, row-major) and the weight w (n x k, row-major); bias is null or n floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run<TVec, TW, TR>(float* w, int k, int n, float* x, float* y, float* bias, int n0, int n1)
        where TVec : unmanaged
        where TW : struct, ISimdWidth<TVec>
        where TR : struct, IRowCount
    {
        int row = n0;
        for (; row + BlockRows <= n1; row += BlockRows)
        {
            // The next block, while it is in this range (the last one prefetches nothing).
            long ahead = row + 2 * BlockRows <= n1 ? (long)BlockRows * k : 0;
            Block<TVec, TW, TR>(w + (long)row * k, k, n, x, y + row, bias == null ? null : bias + row, ahead);
        }
        for (; row < n1; row++) Single<TVec, TW, TR>(w + (long)row * k, k, n, x, y + row, bias == null ? null : bias + row);
    }

    /// <summary>Four weight rows at <paramref name="w"/> (k apart) against every activation row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block<TVec, TW, TR>(float* w, int k, int n, float* x, float* y, float* bias, long ahead)
        where TVec : unmanaged
        where TW : struct, ISimdWidth<TVec>
        where TR : struct, IRowCount
    {
        int lanes = Unsafe.SizeOf<TVec>() / sizeof(float);
        float* w1 = w + k, w2 = w + 2 * (long)k, w3 = w + 3 * (long)k;
        float* x1 = x + k, x2 = x + 2 * (long)k;
        TVec a0 = default, a1 = default, a2 = default, a3 = default; // activation row 0 by weight row 0-3
        TVec b0 = default, b1 = default, b2 = default, b3 = default; // row 1
        TVec c0 = default, c1 = default, c2 = default, c3 = default; // row 2
        int i = 0;
        for (; i + LineFloats <= k; i += LineFloats)
        {
            if (ahead != 0) Prefetch(w + ahead + i, w1 + ahead + i, w2 + ahead + i, w3 + ahead + i);
            for (int j = 0; j < LineFloats; j += lanes) // one or two steps: a constant trip count
            {
                Step<TVec, TW, TR>(w + i + j, w1 + i + j, w2 + i + j, w3 + i + j, x + i + j, x1 + i + j, x2 + i + j,
                    ref a0, ref a1, ref a2, ref a3, ref b0, ref b1, ref b2, ref b3, ref c0, ref c1, ref c2, ref c3);
            }
        }
        for (; i + lanes <= k; i += lanes)
        {
            Step<TVec, TW, TR>(w + i, w1 + i, w2 + i, w3 + i, x + i, x1 + i, x2 + i,
                ref a0, ref a1, ref a2, ref a3, ref b0, ref b1, ref b2, ref b3, ref c0, ref c1, ref c2, ref c3);
        }
        Store(y, bias, TW.Sum(a0), TW.Sum(a1), TW.Sum(a2), TW.Sum(a3), w, w1, w2, w3, x, i, k);
        if (TR.Rows > 1) Store(y + n, bias, TW.Sum(b0), TW.Sum(b1), TW.Sum(b2), TW.Sum(b3), w, w1, w2, w3, x1, i, k);
        if (TR.Rows > 2)
            Store(y + 2 * (long)n, bias, TW.Sum(c0), TW.Sum(c1), TW.Sum(c2), TW.Sum(c3), w, w1, w2, w3, x2, i, k);
    }

    /// <summary>One vector of each of the four weight rows times one vector of each activation row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step<TVec, TW, TR>(float* w0, float* w1, float* w2, float* w3, float* x0, float* x1,
        float* x2, ref TVec a0, ref TVec a1, ref TVec a2, ref TVec a3, ref TVec b0, ref TVec b1, ref TVec b2,
        ref TVec b3, ref TVec c0, ref TVec c1, ref TVec c2, ref TVec c3)
        where TVec : unmanaged
        where TW : struct, ISimdWidth<TVec>
        where TR : struct, IRowCount
    {
        TVec v0 = Unsafe.ReadUnaligned<TVec>(w0), v1 = Unsafe.ReadUnaligned<TVec>(w1);
        TVec v2 = Unsafe.ReadUnaligned<TVec>(w2), v3 = Unsafe.ReadUnaligned<TVec>(w3);
        TVec xv = Unsafe.ReadUnaligned<TVec>(x0);
        a0 = TW.MultiplyAdd(v0, xv, a0);
        a1 = TW.MultiplyAdd(v1, xv, a1);
        a2 = TW.MultiplyAdd(v2, xv, a2);
        a3 = TW.MultiplyAdd(v3, xv, a3);
        if (TR.Rows > 1)
        {
            xv = Unsafe.ReadUnaligned<TVec>(x1);
            b0 = TW.MultiplyAdd(v0, xv, b0);
            b1 = TW.MultiplyAdd(v1, xv, b1);
            b2 = TW.MultiplyAdd(v2, xv, b2);
            b3 = TW.MultiplyAdd(v3, xv, b3);
        }
        if (TR.Rows > 2)
        {
            xv = Unsafe.ReadUnaligned<TVec>(x2);
            c0 = TW.MultiplyAdd(v0, xv, c0);
            c1 = TW.MultiplyAdd(v1, xv, c1);
            c2 = TW.MultiplyAdd(v2, xv, c2);
            c3 = TW.MultiplyAdd(v3, xv, c3);
        }
    }

    /// <summary>Writes one activation row's four sums, each with its scalar tail (from <paramref name="i"/> to k)
    /// and bias added.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* y, float* bias, float s0, float s1, float s2, float s3, float* w0,
        float* w1, float* w2, float* w3, float* x, int i, int k)
    {
        for (int t = i; t < k; t++)
        {
            s0 += w0[t] * x[t];
            s1 += w1[t] * x[t];
            s2 += w2[t] * x[t];
            s3 += w3[t] * x[t];
        }
        if (bias != null)
        {
            s0 += bias[0];
            s1 += bias[1];
            s2 += bias[2];
            s3 += bias[3];
        }
        y[0] = s0;
        y[1] = s1;
        y[2] = s2;
        y[3] = s3;
    }

    /// <summary>A leftover weight row (n not a multiple of four) against every activation row.</summary>
    private static void Single<TVec, TW, TR>(float* w, int k, int n, float* x, float* y, float* bias)
        where TVec : unmanaged
        where TW : struct, ISimdWidth<TVec>
        where TR : struct, IRowCount
    {
        for (int r = 0; r < TR.Rows; r++)
        {
            float* xr = x + (long)r * k;
            int lanes = Unsafe.SizeOf<TVec>() / sizeof(float);
            TVec acc = default;
            int i = 0;
            for (; i + lanes <= k; i += lanes)
                acc = TW.MultiplyAdd(Unsafe.ReadUnaligned<TVec>(w + i), Unsafe.ReadUnaligned<TVec>(xr + i), acc);
            float sum = TW.Sum(acc);
            for (; i < k; i++) sum += w[i] * xr[i];
            y[(long)r * n] = bias == null ? sum : sum + bias[0];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(float* a, float* b, float* c, float* d)
    {
        if (!Sse.IsSupported) return;
        Sse.Prefetch0(a);
        Sse.Prefetch0(b);
        Sse.Prefetch0(c);
        Sse.Prefetch0(d);
    }
}
