using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime.Cuda;

namespace Quanto.Kernels.Ilgpu.Kernels;

/// <summary>
/// Compiles kernels to PTX text without a GPU or CUDA driver (ILGPU's PTX backend needs neither). This is the CUDA
/// evidence where no GPU is at hand: the tests compile every kernel for each target and check the code.
/// </summary>
public sealed class PtxCompiler : IDisposable
{
    private readonly Context _context = Context.Create(builder => builder.Optimize(OptimizationLevel.O2));

    /// <summary>The architectures the tests target (Turing, Ampere: sm_80 and the consumer cards' sm_86, Ada,
    /// Hopper).</summary>
    public static IReadOnlyList<CudaArchitecture> Targets { get; } =
    [
        CudaArchitecture.SM_75, CudaArchitecture.SM_80, CudaArchitecture.SM_86, CudaArchitecture.SM_89,
        CudaArchitecture.SM_90,
    ];

    /// <summary>PTX text of <paramref name="entry"/> for <paramref name="architecture"/>.</summary>
    public string Compile(KernelEntry entry, CudaArchitecture architecture)
    {
        ArgumentNullException.ThrowIfNull(entry);
        using var backend = new PTXBackend(_context, architecture, InstructionSetFor(architecture), null!);
        var description = EntryPointDescription.FromExplicitlyGroupedKernel(entry.Method);
        var compiled = (PTXCompiledKernel)backend.Compile(description, default);
        return compiled.PTXAssembly;
    }

    /// <summary>The oldest PTX ISA that knows <paramref name="architecture"/> (sm_89 and sm_90 need PTX 7.8).</summary>
    public static CudaInstructionSet InstructionSetFor(CudaArchitecture architecture) =>
        architecture.Major >= 9 || architecture == CudaArchitecture.SM_89
            ? CudaInstructionSet.ISA_78
            : CudaInstructionSet.ISA_70;

    /// <inheritdoc />
    public void Dispose() => _context.Dispose();
}
