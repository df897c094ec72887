using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Quanto.Kernels.Cpu.Simd128;

/// <summary>
/// The 128-bit width of the shared GEMV/GEMM drivers; its GEMM micro-kernel is
/// a 4x2 register tile (8 vector registers).
/// </summary>
internal readonly unsafe struct Width128 : ISimdWidth<Vector128<float>>
{
    /// <inheritdoc />
    public static int PanelRows => 2;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Broadcast(float value) => Vector128.Create(value);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> MultiplyAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) =>
        Vector128.FusedMultiplyAdd(a, b, c);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector128<float> value) => Vector128.Sum(value);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Micro(float* x, int ldx, float* p, int ldp, int len, float* tile)
    {
        Vector128<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector128<float> c20 = default, c21 = default, c30 = default, c31 = default;
        float* x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx;
        float* p1 = p + ldp;
        for (int k = 0; k < len; k += 4)
        {
            Vector128<float> w0 = Vector128.Load(p + k), w1 = Vector128.Load(p1 + k);
            Vector128<float> a = Vector128.Load(x + k);
            c00 = Vector128.FusedMultiplyAdd(a, w0, c00);
            c01 = Vector128.FusedMultiplyAdd(a, w1, c01);
            a = Vector128.Load(x1 + k);
            c10 = Vector128.FusedMultiplyAdd(a, w0, c10);
            c11 = Vector128.FusedMultiplyAdd(a, w1, c11);
            a = Vector128.Load(x2 + k);
            c20 = Vector128.FusedMultiplyAdd(a, w0, c20);
            c21 = Vector128.FusedMultiplyAdd(a, w1, c21);
            a = Vector128.Load(x3 + k);
            c30 = Vector128.FusedMultiplyAdd(a, w0, c30);
            c31 = Vector128.FusedMultiplyAdd(a, w1, c31);
        }
        tile[0] = Vector128.Sum(c00); tile[1] = Vector128.Sum(c01); tile[2] = Vector128.Sum(c10);
        tile[3] = Vector128.Sum(c11); tile[4] = Vector128.Sum(c20); tile[5] = Vector128.Sum(c21);
        tile[6] = Vector128.Sum(c30); tile[7] = Vector128.Sum(c31);
    }
}
