namespace Quanto.Kernels.Ilgpu.Accelerators;

/// <summary>The ILGPU accelerator families, in the default order of preference.</summary>
public enum AcceleratorKind
{
    /// <summary>An NVIDIA GPU through the CUDA driver.</summary>
    Cuda,

    /// <summary>An OpenCL device (GPU or CPU driver such as PoCL).</summary>
    OpenCL,

    /// <summary>ILGPU's CPU accelerator: simulated GPU threads, for correctness checks (slow).</summary>
    Cpu,
}

/// <summary>How <see cref="IlgpuKernels"/> picks its accelerator.</summary>
public sealed record IlgpuOptions
{
    /// <summary>The kind to use; null picks CUDA, then OpenCL, then the CPU accelerator.</summary>
    public AcceleratorKind? Accelerator { get; init; }

    /// <summary>
    /// Opt-in: accept OpenCL devices that lack the generic address space (Debian's PoCL, some Intel drivers), which
    /// ILGPU refuses although these kernels use no generic pointers. Needs an ILGPU internal, so it is guarded by the
    /// ILGPU version (<see cref="OpenCLOptIn.TestedIlgpuVersion"/>) and fails with a clear message otherwise.
    /// </summary>
    public bool AllowOpenCLWithoutGenericAddressSpace { get; init; }

    /// <summary>Substring of the device name to require (case-insensitive), e.g. "pthread" or "A100"; null: any.</summary>
    public string? DeviceName { get; init; }
}
