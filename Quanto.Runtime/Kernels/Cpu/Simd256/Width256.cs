using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Simd256;

/// <summary>
/// The 256-bit width of the shared GEMV/GEMM drivers; its GEMM micro-kernel is
/// a 4x2 register tile (8 of the 16 ymm registers).
/// </summary>
internal readonly unsafe struct Width256 : ISimdWidth<Vector256<float>>
{
    /// <inheritdoc />
    public static int PanelRows => 2;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Broadcast(float value) => Vector256.Create(value);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        Fma.MultiplyAdd(a, b, c);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector256<float> value) => Vector256.Sum(value);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Micro(float* x, int ldx, float* p, int ldp, int len, float* tile)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector256<float> c20 = default, c21 = default, c30 = default, c31 = default;
        float* x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx;
        float* p1 = p + ldp;
        for (int k = 0; k < len; k += 8)
        {
            Vector256<float> w0 = Vector256.Load(p + k), w1 = Vector256.Load(p1 + k);
            Vector256<float> a = Vector256.Load(x + k);
            c00 = Fma.MultiplyAdd(a, w0, c00);
            c01 = Fma.MultiplyAdd(a, w1, c01);
            a = Vector256.Load(x1 + k);
            c10 = Fma.MultiplyAdd(a, w0, c10);
            c11 = Fma.MultiplyAdd(a, w1, c11);
            a = Vector256.Load(x2 + k);
            c20 = Fma.MultiplyAdd(a, w0, c20);
            c21 = Fma.MultiplyAdd(a, w1, c21);
            a = Vector256.Load(x3 + k);
            c30 = Fma.MultiplyAdd(a, w0, c30);
            c31 = Fma.MultiplyAdd(a, w1, c31);
        }
        tile[0] = Vector256.Sum(c00); tile[1] = Vector256.Sum(c01); tile[2] = Vector256.Sum(c10);
        tile[3] = Vector256.Sum(c11); tile[4] = Vector256.Sum(c20); tile[5] = Vector256.Sum(c21);
        tile[6] = Vector256.Sum(c30); tile[7] = Vector256.Sum(c31);
    }
}
