using System.Runtime.CompilerServices;
using ILGPU.Runtime.Cuda;

namespace Quanto.Kernels.Ilgpu.Kernels;

/// <summary>
/// c + the dot product of the four signed bytes of a and b. On CUDA one <c>dp4a.s32.s32</c> instruction (sm_61+);
/// elsewhere four shifted multiplies. CudaAsm.IsSupported is resolved per backend when the kernel is compiled, so the
/// inline PTX never reaches the CPU accelerator (where it would crash) or OpenCL (where it would be silently dropped).
/// </summary>
public static class Dp4a
{
    /// <summary>c + Σ a.byte[i] * b.byte[i] over the four signed bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Dot(int a, int b, int c)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("dp4a.s32.s32 %0, %1, %2, %3;", out int result, a, b, c);
            return result;
        }
        return Portable(a, b, c);
    }

    /// <summary>The portable form: sign-extend each byte by shifting it to the top and back.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Portable(int a, int b, int c) =>
        c + ((a << 24) >> 24) * ((b << 24) >> 24)
          + ((a << 16) >> 24) * ((b << 16) >> 24)
          + ((a << 8) >> 24) * ((b << 8) >> 24)
          + (a >> 24) * (b >> 24);
}
