using NUnit.Framework;
using Quanto.Kernels.Ilgpu;
using Quanto.Kernels.Ilgpu.Accelerators;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Ilgpu;

/// <summary>
/// The ILGPU backends the suite runs on, created once per test run (creating one compiles nothing, but kernels
/// compile on first use and stay loaded): the CPU accelerator always, PoCL OpenCL when such a device is installed
/// (through the opt-in), CUDA when present.
/// </summary>
[SetUpFixture]
public sealed class IlgpuTestSupport
{
    private static readonly Lazy<IlgpuKernels> LazyCpu = new(() => new IlgpuKernels(new IlgpuOptions
    {
        Accelerator = AcceleratorKind.Cpu,
    }));

    private static readonly Lazy<IlgpuKernels?> LazyOpenCL = new(() => TryCreate(AcceleratorKind.OpenCL));

    private static readonly Lazy<IlgpuKernels?> LazyCuda = new(() => TryCreate(AcceleratorKind.Cuda));

    public static IlgpuKernels Cpu => LazyCpu.Value;

    /// <summary>The backend of a kind, or an ignored test when the machine has no such device.</summary>
    public static IlgpuKernels Backend(AcceleratorKind kind)
    {
        IlgpuKernels? backend = kind switch
        {
            AcceleratorKind.Cpu => Cpu,
            AcceleratorKind.OpenCL => LazyOpenCL.Value,
            _ => LazyCuda.Value,
        };
        if (backend is null) Assert.Ignore($"No {kind} device on this machine (see the backend report in other tests).");
        return backend!;
    }

    /// <summary>Kinds the correctness suite runs on.</summary>
    public static IEnumerable<AcceleratorKind> Kinds => [AcceleratorKind.Cpu, AcceleratorKind.OpenCL, AcceleratorKind.Cuda];

    [OneTimeTearDown]
    public void DisposeBackends()
    {
        if (LazyCpu.IsValueCreated) LazyCpu.Value.Dispose();
        if (LazyOpenCL.IsValueCreated) LazyOpenCL.Value?.Dispose();
        if (LazyCuda.IsValueCreated) LazyCuda.Value?.Dispose();
    }

    /// <summary>max|actual - expected| / max|expected|.</summary>
    public static double RelativeError(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        Assert.That(actual.shape, Is.EqualTo(expected.shape), "output shape");
        double denominator = expected.abs().max().item<float>();
        return actual.to(ScalarType.Float64).sub(expected.to(ScalarType.Float64)).abs().max().item<double>() /
            Math.Max(denominator, 1e-30);
    }

    public static Tensor Random(long seed, params long[] shape)
    {
        using var generator = new Generator((ulong)seed);
        return randn(shape, generator: generator);
    }

    private static IlgpuKernels? TryCreate(AcceleratorKind kind)
    {
        try
        {
            return new IlgpuKernels(new IlgpuOptions { Accelerator = kind, AllowOpenCLWithoutGenericAddressSpace = true });
        }
        catch (NotSupportedException)
        {
            return null;
        }
    }
}
