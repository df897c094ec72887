using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Int8;

internal readonly struct Rows2 : ITileRows { public static int Rows => 2; }

internal readonly struct Rows3 : ITileRows { public static int Rows => 3; }

internal readonly struct Rows5 : ITileRows { public static int Rows => 5; }

internal readonly struct Rows6 : ITileRows { public static int Rows => 6; }

/// <summary>
/// The float GEMM micro-kernel in managed Vector512 code: R rows (1 to 6) x 64 columns of float32 sums in 4R zmm
/// registers; per input four weight loads (one decoded row of the block) and per row one broadcast activation and
/// four vfmadd231ps, so each weight load serves R rows and each broadcast 64 columns. The sums start from and go back
/// to the accumulators in memory (rows of <see cref="FloatGemmJob.BlockColumns"/> floats).
/// </summary>
internal static unsafe class FloatGemmMicro
{
    /// <summary>Rows per tile at most (24 accumulators, 4 weights and a broadcast fit 32 registers).</summary>
    public const int MaxRows = 6;

    /// <summary>acc[r][0..64) += sum over k &lt; <paramref name="count"/> of x[r][k] * w[k][0..64) for r &lt; R.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Tile<TR>(float* x, long ldx, float* w, int count, float* acc) where TR : struct, ITileRows
    {
        const int S = FloatGemmJob.BlockColumns;
        int rows = TR.Rows;
        Vector512<float> c00 = Vector512.Load(acc), c01 = Vector512.Load(acc + 16);
        Vector512<float> c02 = Vector512.Load(acc + 32), c03 = Vector512.Load(acc + 48);
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        Vector512<float> c40 = default, c41 = default, c42 = default, c43 = default;
        Vector512<float> c50 = default, c51 = default, c52 = default, c53 = default;
        if (rows > 1) (c10, c11, c12, c13) = Load(acc + S);
        if (rows > 2) (c20, c21, c22, c23) = Load(acc + 2 * S);
        if (rows > 3) (c30, c31, c32, c33) = Load(acc + 3 * S);
        if (rows > 4) (c40, c41, c42, c43) = Load(acc + 4 * S);
        if (rows > 5) (c50, c51, c52, c53) = Load(acc + 5 * S);
        float* x0 = x, x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx, x4 = x + 4 * ldx, x5 = x + 5 * ldx;
        for (int k = 0; k < count; k++, w += S)
        {
            Vector512<float> w0 = Vector512.Load(w), w1 = Vector512.Load(w + 16);
            Vector512<float> w2 = Vector512.Load(w + 32), w3 = Vector512.Load(w + 48);
            Vector512<float> a = Vector512.Create(x0[k]);
            c00 = Avx512F.FusedMultiplyAdd(w0, a, c00);
            c01 = Avx512F.FusedMultiplyAdd(w1, a, c01);
            c02 = Avx512F.FusedMultiplyAdd(w2, a, c02);
            c03 = Avx512F.FusedMultiplyAdd(w3, a, c03);
            if (rows > 1)
            {
                a = Vector512.Create(x1[k]);
                c10 = Avx512F.FusedMultiplyAdd(w0, a, c10);
                c11 = Avx512F.FusedMultiplyAdd(w1, a, c11);
                c12 = Avx512F.FusedMultiplyAdd(w2, a, c12);
                c13 = Avx512F.FusedMultiplyAdd(w3, a, c13);
            }
            if (rows > 2)
            {
                a = Vector512.Create(x2[k]);
                c20 = Avx512F.FusedMultiplyAdd(w0, a, c20);
                c21 = Avx512F.FusedMultiplyAdd(w1, a, c21);
                c22 = Avx512F.FusedMultiplyAdd(w2, a, c22);
                c23 = Avx512F.FusedMultiplyAdd(w3, a, c23);
            }
            if (rows > 3)
            {
                a = Vector512.Create(x3[k]);
                c30 = Avx512F.FusedMultiplyAdd(w0, a, c30);
                c31 = Avx512F.FusedMultiplyAdd(w1, a, c31);
                c32 = Avx512F.FusedMultiplyAdd(w2, a, c32);
                c33 = Avx512F.FusedMultiplyAdd(w3, a, c33);
            }
            if (rows > 4)
            {
                a = Vector512.Create(x4[k]);
                c40 = Avx512F.FusedMultiplyAdd(w0, a, c40);
                c41 = Avx512F.FusedMultiplyAdd(w1, a, c41);
                c42 = Avx512F.FusedMultiplyAdd(w2, a, c42);
                c43 = Avx512F.FusedMultiplyAdd(w3, a, c43);
            }
            if (rows > 5)
            {
                a = Vector512.Create(x5[k]);
                c50 = Avx512F.FusedMultiplyAdd(w0, a, c50);
                c51 = Avx512F.FusedMultiplyAdd(w1, a, c51);
                c52 = Avx512F.FusedMultiplyAdd(w2, a, c52);
                c53 = Avx512F.FusedMultiplyAdd(w3, a, c53);
            }
        }
        Store(acc, c00, c01, c02, c03);
        if (rows > 1) Store(acc + S, c10, c11, c12, c13);
        if (rows > 2) Store(acc + 2 * S, c20, c21, c22, c23);
        if (rows > 3) Store(acc + 3 * S, c30, c31, c32, c33);
        if (rows > 4) Store(acc + 4 * S, c40, c41, c42, c43);
        if (rows > 5) Store(acc + 5 * S, c50, c51, c52, c53);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float>, Vector512<float>, Vector512<float>, Vector512<float>) Load(float* p) =>
        (Vector512.Load(p), Vector512.Load(p + 16), Vector512.Load(p + 32), Vector512.Load(p + 48));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* p, Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
    {
        a.Store(p);
        b.Store(p + 16);
        c.Store(p + 32);
        d.Store(p + 48);
    }

    /// <summary>The tile of <paramref name="rows"/> rows (1 to 6).</summary>
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
