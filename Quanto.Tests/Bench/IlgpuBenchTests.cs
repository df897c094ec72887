using NUnit.Framework;
using Quanto.Bench;
using Quanto.Kernels.Ilgpu;
using Quanto.Kernels.Ilgpu.Accelerators;

namespace Quanto.Tests.Bench;

/// <summary>Quanto.Bench's ILGPU rows (<c>--ilgpu</c>) on the CPU accelerator.</summary>
[TestFixture]
public sealed class IlgpuBenchTests
{
    [Test]
    public void MeasuresEveryFormat()
    {
        // Its own backend: the Kernels.Ilgpu fixtures dispose theirs when their namespace finishes.
        using var backend = new IlgpuKernels(new IlgpuOptions { Accelerator = AcceleratorKind.Cpu });
        IReadOnlyList<IlgpuBenchmarkRow> rows = IlgpuBenchmark.Run(backend, n: 8, k: 256, m: 1, iterations: 1);

        Assert.That(rows.Select(r => r.Format), Is.EqualTo(IlgpuBenchmark.Formats.Select(f => f.Name)));
        Assert.That(rows, Has.All.Matches<IlgpuBenchmarkRow>(r => r.Milliseconds > 0 && r.DeviceBytes > 0));
        Assert.That(IlgpuBenchmark.ToMarkdown(rows), Does.Contain("| ilgpu-cpu |"));
    }
}
