using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu;

/// <summary>The SIMD width a <see cref="CpuKernels"/> instance runs its float-activation kernels with (the
/// int8-activation kernels pick their own instructions from CPUID: Cpu/Int8/DotKernels.cs).</summary>
public enum CpuKernelPath
{
    /// <summary>The widest path this CPU supports (Vector512, then Vector256, then Vector128, then scalar).</summary>
    Auto,

    /// <summary>Plain scalar C#: runs everywhere, the slowest.</summary>
    Scalar,

    /// <summary>128-bit vectors through the portable <see cref="Vector128"/> API (SSE on x64, AdvSimd on Arm).</summary>
    Vector128,

    /// <summary>256-bit vectors: x64 AVX2 + FMA.</summary>
    Vector256,

    /// <summary>512-bit vectors: x64 AVX-512 F/BW.</summary>
    Vector512,
}

/// <summary>What this CPU can run, asked once.</summary>
public static class CpuFeatures
{
    /// <summary>The widest supported path.</summary>
    public static CpuKernelPath Best { get; } =
        IsSupported(CpuKernelPath.Vector512) ? CpuKernelPath.Vector512
        : IsSupported(CpuKernelPath.Vector256) ? CpuKernelPath.Vector256
        : IsSupported(CpuKernelPath.Vector128) ? CpuKernelPath.Vector128
        : CpuKernelPath.Scalar;

    /// <summary>True when AVX-VNNI (vpdpbusd on 256-bit registers, which the JIT emits) is available.</summary>
    public static bool HasAvxVnni => AvxVnni.IsSupported;

    /// <summary>True when <paramref name="path"/> can run on this CPU (Auto and Scalar always can).</summary>
    public static bool IsSupported(CpuKernelPath path) => path switch
    {
        CpuKernelPath.Auto or CpuKernelPath.Scalar => true,
        CpuKernelPath.Vector128 => Vector128.IsHardwareAccelerated,
        CpuKernelPath.Vector256 => Avx2.IsSupported && Fma.IsSupported,
        CpuKernelPath.Vector512 => Avx512F.IsSupported && Avx512BW.IsSupported,
        _ => false,
    };

    /// <summary>All paths this CPU supports, widest last (tests iterate these).</summary>
    public static IReadOnlyList<CpuKernelPath> Supported { get; } =
        new[] { CpuKernelPath.Scalar, CpuKernelPath.Vector128, CpuKernelPath.Vector256, CpuKernelPath.Vector512 }
            .Where(IsSupported).ToArray();
}
