using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Simd512;

/// <summary>
/// The 512-bit width of the shared GEMV/GEMM drivers; its GEMM micro-kernel is
/// a 4x4 register tile (16 zmm accumulators).
/// </summary>
internal readonly unsafe struct Width512 : ISimdWidth<Vector512<float>>
{
    /// <inheritdoc />
    public static int PanelRows => 4;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Broadcast(float value) => Vector512.Create(value);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) =>
        Avx512F.FusedMultiplyAdd(a, b, c);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector512<float> value) => Vector512.Sum(value);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Micro(float* x, int ldx, float* p, int ldp, int len, float* tile)
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        float* x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx;
        float* p1 = p + ldp, p2 = p + 2 * ldp, p3 = p + 3 * ldp;
        for (int k = 0; k < len; k += 16)
        {
            Vector512<float> w0 = Vector512.Load(p + k), w1 = Vector512.Load(p1 + k);
            Vector512<float> w2 = Vector512.Load(p2 + k), w3 = Vector512.Load(p3 + k);
            Vector512<float> a = Vector512.Load(x + k);
            c00 = Avx512F.FusedMultiplyAdd(a, w0, c00);
            c01 = Avx512F.FusedMultiplyAdd(a, w1, c01);
            c02 = Avx512F.FusedMultiplyAdd(a, w2, c02);
            c03 = Avx512F.FusedMultiplyAdd(a, w3, c03);
            a = Vector512.Load(x1 + k);
            c10 = Avx512F.FusedMultiplyAdd(a, w0, c10);
            c11 = Avx512F.FusedMultiplyAdd(a, w1, c11);
            c12 = Avx512F.FusedMultiplyAdd(a, w2, c12);
            c13 = Avx512F.FusedMultiplyAdd(a, w3, c13);
            a = Vector512.Load(x2 + k);
            c20 = Avx512F.FusedMultiplyAdd(a, w0, c20);
            c21 = Avx512F.FusedMultiplyAdd(a, w1, c21);
            c22 = Avx512F.FusedMultiplyAdd(a, w2, c22);
            c23 = Avx512F.FusedMultiplyAdd(a, w3, c23);
            a = Vector512.Load(x3 + k);
            c30 = Avx512F.FusedMultiplyAdd(a, w0, c30);
            c31 = Avx512F.FusedMultiplyAdd(a, w1, c31);
            c32 = Avx512F.FusedMultiplyAdd(a, w2, c32);
            c33 = Avx512F.FusedMultiplyAdd(a, w3, c33);
        }
        tile[0] = Vector512.Sum(c00); tile[1] = Vector512.Sum(c01); tile[2] = Vector512.Sum(c02);
        tile[3] = Vector512.Sum(c03); tile[4] = Vector512.Sum(c10); tile[5] = Vector512.Sum(c11);
        tile[6] = Vector512.Sum(c12); tile[7] = Vector512.Sum(c13); tile[8] = Vector512.Sum(c20);
        tile[9] = Vector512.Sum(c21); tile[10] = Vector512.Sum(c22); tile[11] = Vector512.Sum(c23);
        tile[12] = Vector512.Sum(c30); tile[13] = Vector512.Sum(c31); tile[14] = Vector512.Sum(c32);
        tile[15] = Vector512.Sum(c33);
    }
}
