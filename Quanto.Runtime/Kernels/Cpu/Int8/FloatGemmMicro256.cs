using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// The float GEMM micro-kernel on AVX2 + FMA: R rows (1 to 6) x 16 columns of float32 sums in 2R ymm registers, the
/// classic 6 x 16 tile of AVX2 SGEMM (12 accumulators, 2 weight loads and a broadcast fit the 16 registers). A block
/// of <see cref="FloatGemmJob.BlockColumns"/> columns runs as four such column strips (<see cref="FloatGemmJob"/>);
/// per input two weight loads serve R rows and each broadcast 16 columns. The sums start from and go back to the accumulators in memory.
/// </summary>
internal static unsafe class FloatGemmMicro256
{
    /// <summary>Columns per strip (two ymm).</summary>
    public const int StripColumns = 16;

    /// <summary>acc[r][0..16) += sum over k &lt; <paramref name="count"/> of x[r][k] * w[k][0..16) for r &lt; R
    /// (w and acc rows <see cref="FloatGemmJob.BlockColumns"/> floats apart).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Tile<TR>(float* x, long ldx, float* w, int count, float* acc) where TR : struct, ITileRows
    {
        const int S = FloatGemmJob.BlockColumns;
        int rows = TR.Rows;
        Vector256<float> c00 = Vector256.Load(acc), c01 = Vector256.Load(acc + 8);
        Vector256<float> c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        if (rows > 1) (c10, c11) = (Vector256.Load(acc + S), Vector256.Load(acc + S + 8));
        if (rows > 2) (c20, c21) = (Vector256.Load(acc + 2 * S), Vector256.Load(acc + 2 * S + 8));
        if (rows > 3) (c30, c31) = (Vector256.Load(acc + 3 * S), Vector256.Load(acc + 3 * S + 8));
        if (rows > 4) (c40, c41) = (Vector256.Load(acc + 4 * S), Vector256.Load(acc + 4 * S + 8));
        if (rows > 5) (c50, c51) = (Vector256.Load(acc + 5 * S), Vector256.Load(acc + 5 * S + 8));
        float* x0 = x, x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx, x4 = x + 4 * ldx, x5 = x + 5 * ldx;
        for (int k = 0; k < count; k++, w += S)
        {
            Vector256<float> w0 = Vector256.Load(w), w1 = Vector256.Load(w + 8);
            Vector256<float> a = Vector256.Create(x0[k]);
            c00 = Fma.MultiplyAdd(w0, a, c00);
            c01 = Fma.MultiplyAdd(w1, a, c01);
            if (rows > 1)
            {
                a = Vector256.Create(x1[k]);
                c10 = Fma.MultiplyAdd(w0, a, c10);
                c11 = Fma.MultiplyAdd(w1, a, c11);
            }
            if (rows > 2)
            {
                a = Vector256.Create(x2[k]);
                c20 = Fma.MultiplyAdd(w0, a, c20);
                c21 = Fma.MultiplyAdd(w1, a, c21);
            }
            if (rows > 3)
            {
                a = Vector256.Create(x3[k]);
                c30 = Fma.MultiplyAdd(w0, a, c30);
                c31 = Fma.MultiplyAdd(w1, a, c31);
            }
            if (rows > 4)
            {
                a = Vector256.Create(x4[k]);
                c40 = Fma.MultiplyAdd(w0, a, c40);
                c41 = Fma.MultiplyAdd(w1, a, c41);
            }
            if (rows > 5)
            {
                a = Vector256.Create(x5[k]);
                c50 = Fma.MultiplyAdd(w0, a, c50);
                c51 = Fma.MultiplyAdd(w1, a, c51);
            }
        }
        c00.Store(acc);
        c01.Store(acc + 8);
        if (rows > 1) Store(acc + S, c10, c11);
        if (rows > 2) Store(acc + 2 * S, c20, c21);
        if (rows > 3) Store(acc + 3 * S, c30, c31);
        if (rows > 4) Store(acc + 4 * S, c40, c41);
        if (rows > 5) Store(acc + 5 * S, c50, c51);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* p, Vector256<float> a, Vector256<float> b)
    {
        a.Store(p);
        b.Store(p + 8);
    }

    /// <summary>The tile of <paramref name="rows"/> rows (1 to 6) on one strip: <paramref name="w"/> and
    /// <paramref name="acc"/> point at the strip's first column.</summary>
    public static void Run(int rows, float* x, long ldx, float* w, int count, float* acc)
    {
        switch (rows)
        {
            case 6: Tile<Rows6>(x, ldx, w, count, acc); break;
            case 5: Tile<Rows5>(x, ldx, w, count, acc); break;
            case 4: Tile<Four>(x, ldx, w, count, acc); break;
            case 3: Tile<Rows3>(x, ldx, w, count, acc); break;
            case 2: Tile<Rows2>(x, ldx, w, count, acc); break;
            default: Tile<One>(x, ldx, w, count, acc); break;
        }
    }
}
