using NUnit.Framework;
using Quanto.Kernels.Ilgpu;
using Quanto.Kernels.Ilgpu.Accelerators;

namespace Quanto.Tests.Kernels.Ilgpu;

/// <summary>Accelerator choice: the order CUDA > OpenCL > CPU, refusals with reasons, and the user's choice.</summary>
[TestFixture]
public sealed class AcceleratorSelectionTests
{
    private static readonly DeviceCandidate Cpu = new(AcceleratorKind.Cpu, "CPUAccelerator");
    private static readonly DeviceCandidate Gpu = new(AcceleratorKind.Cuda, "NVIDIA H100");
    private static readonly DeviceCandidate Intel = new(AcceleratorKind.OpenCL, "Intel Arc A770");
    private static readonly DeviceCandidate Pocl = new(AcceleratorKind.OpenCL, "pthread-skylake",
        "OpenCL C 1.2 without the generic address space");

    [Test]
    public void PrefersCudaThenOpenCLThenCpu()
    {
        Assert.That(AcceleratorSelector.Choose([Cpu, Intel, Gpu], [], new IlgpuOptions()).Chosen, Is.EqualTo(Gpu));
        Assert.That(AcceleratorSelector.Choose([Cpu, Intel], [], new IlgpuOptions()).Chosen, Is.EqualTo(Intel));
    }

    [Test]
    public void NoCudaOrUsableOpenCLFallsBackToCpuWithAReport()
    {
        AcceleratorReport report = AcceleratorSelector.Choose([Cpu, Pocl], ["CUDA: no NVIDIA driver"], new IlgpuOptions());

        Assert.That(report.Chosen, Is.EqualTo(Cpu));
        Assert.That(report.Why, Does.Contain("no usable CUDA or OpenCL device"));
        string text = report.ToString();
        Assert.That(text, Does.Contain("refused: OpenCL C 1.2 without the generic address space"));
        Assert.That(text, Does.Contain("none CUDA: no NVIDIA driver"));
    }

    [Test]
    public void UserChoiceWinsOverTheDefaultOrder()
    {
        AcceleratorReport report = AcceleratorSelector.Choose([Cpu, Intel, Gpu], [],
            new IlgpuOptions { Accelerator = AcceleratorKind.Cpu });

        Assert.That(report.Chosen, Is.EqualTo(Cpu));
        Assert.That(report.Why, Does.Contain("named by the user"));
    }

    [Test]
    public void UserChoiceOfAnAbsentKindFailsListingWhatWasSeen()
    {
        var error = Assert.Throws<NotSupportedException>(() => AcceleratorSelector.Choose([Cpu, Pocl],
            ["CUDA: no NVIDIA driver"], new IlgpuOptions { Accelerator = AcceleratorKind.OpenCL }));

        Assert.That(error!.Message, Does.Contain("No usable OpenCL device"));
        Assert.That(error.Message, Does.Contain("pthread-skylake"));
        Assert.That(error.Message, Does.Contain("without the generic address space"));
        Assert.That(error.Message, Does.Contain("CUDA: no NVIDIA driver"));
    }

    [Test]
    public void DeviceNameNarrowsTheChoice()
    {
        var second = new DeviceCandidate(AcceleratorKind.Cuda, "NVIDIA L4");
        var options = new IlgpuOptions { Accelerator = AcceleratorKind.Cuda, DeviceName = "l4" };

        Assert.That(AcceleratorSelector.Choose([Gpu, second], [], options).Chosen, Is.EqualTo(second));
    }

    /// <summary>This machine (and CI) has no GPU: the default choice is a usable OpenCL device or the CPU accelerator,
    /// and the report accounts for CUDA and for every OpenCL device seen.</summary>
    [Test]
    public void RealDiscoveryWithoutGpuReportsEveryFamily()
    {
        using var backend = new IlgpuKernels();
        AcceleratorReport report = backend.Report;
        TestContext.Out.WriteLine(report);

        Assert.That(report.Seen.Any(d => d.Kind == AcceleratorKind.Cpu), Is.True);
        Assert.That(report.Chosen.IsUsable, Is.True);
        if (!report.Seen.Any(d => d.Kind == AcceleratorKind.Cuda))
            Assert.That(report.Missing, Has.Some.StartsWith("CUDA:"));
        if (!report.Seen.Any(d => d.Kind == AcceleratorKind.OpenCL))
            Assert.That(report.Missing, Has.Some.StartsWith("OpenCL:"));
        // Refused devices are never chosen and always say why.
        Assert.That(report.Seen.Where(d => !d.IsUsable).Select(d => d.RefusedBecause), Has.None.Empty);
        if (!report.Seen.Any(d => d.Kind != AcceleratorKind.Cpu && d.IsUsable))
        {
            Assert.That(backend.Kind, Is.EqualTo(AcceleratorKind.Cpu));
            Assert.That(backend.IsSimulated, Is.True);
            Assert.That(backend.Name, Is.EqualTo("ilgpu-cpu"));
        }
    }

    [Test]
    public void ForcingAnAbsentCudaFailsClearly()
    {
        using var probe = new IlgpuKernels(new IlgpuOptions { Accelerator = AcceleratorKind.Cpu });
        Assume.That(probe.Report.Seen.Any(d => d.Kind == AcceleratorKind.Cuda), Is.False, "a CUDA device is present");

        var error = Assert.Throws<NotSupportedException>(() =>
            new IlgpuKernels(new IlgpuOptions { Accelerator = AcceleratorKind.Cuda }));

        Assert.That(error!.Message, Does.Contain("No usable Cuda device").And.Contain("CUDA:"));
    }

    [Test]
    public void OpenCLWithoutGenericAddressSpaceNeedsTheOptIn()
    {
        using var probe = new IlgpuKernels(new IlgpuOptions { Accelerator = AcceleratorKind.Cpu });
        DeviceCandidate? refused = probe.Report.Seen.FirstOrDefault(d => d.Kind == AcceleratorKind.OpenCL && !d.IsUsable);
        Assume.That(refused, Is.Not.Null, "no OpenCL device without the generic address space (e.g. PoCL) installed");
        Assert.That(refused!.RefusedBecause, Does.Contain("generic address space").And.Contain("AllowOpenCL"));

        var error = Assert.Throws<NotSupportedException>(() =>
            new IlgpuKernels(new IlgpuOptions { Accelerator = AcceleratorKind.OpenCL }));
        Assert.That(error!.Message, Does.Contain(refused.Name));

        using var optedIn = new IlgpuKernels(new IlgpuOptions
        {
            Accelerator = AcceleratorKind.OpenCL,
            AllowOpenCLWithoutGenericAddressSpace = true,
        });
        Assert.That(optedIn.Kind, Is.EqualTo(AcceleratorKind.OpenCL));
        Assert.That(optedIn.Name, Is.EqualTo("ilgpu-opencl"));
    }

    [Test]
    public void OpenCLOptInIsGuardedByTheIlgpuVersion()
    {
        Assert.That(OpenCLOptIn.IlgpuVersion, Is.EqualTo(OpenCLOptIn.TestedIlgpuVersion),
            "ILGPU was upgraded: re-check CLCapabilityContext and OpenCLOptIn before moving TestedIlgpuVersion");
    }
}
