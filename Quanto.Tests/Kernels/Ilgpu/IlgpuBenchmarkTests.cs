using NUnit.Framework;
using Quanto.Kernels.Ilgpu;
using Quanto.Kernels.Ilgpu.Accelerators;

namespace Quanto.Tests.Kernels.Ilgpu;

[TestFixture]
public sealed class IlgpuBenchmarkTests
{
    [Test]
    public void MeasuresEveryFormat()
    {
        IReadOnlyList<IlgpuBenchmarkRow> rows = IlgpuBenchmark.Run(IlgpuTestSupport.Cpu, n: 8, k: 256, m: 1, iterations: 1);

        Assert.That(rows.Select(r => r.Format), Is.EqualTo(IlgpuBenchmark.Formats.Select(f => f.Name)));
        Assert.That(rows, Has.All.Matches<IlgpuBenchmarkRow>(r => r.Milliseconds > 0 && r.DeviceBytes > 0));
        Assert.That(IlgpuBenchmark.ToMarkdown(rows), Does.Contain("| ilgpu-cpu |"));
    }

    /// <summary>The bench-table numbers, run by hand: <c>dotnet test --filter Name=BenchTable</c>. The CPU accelerator
    /// takes seconds per call even at 1024 x 1024, so it runs a smaller shape (QUANTO_BENCH_SHAPE / _CPU_SHAPE =
    /// "N,K,M" override both).</summary>
    [Test, Explicit("slow: produces the benchmark table")]
    public void BenchTable()
    {
        int[] Shape(string variable, string fallback) =>
            (Environment.GetEnvironmentVariable(variable) ?? fallback).Split(',').Select(int.Parse).ToArray();
        int[] gpu = Shape("QUANTO_BENCH_SHAPE", "4096,4096,1");
        int[] cpu = Shape("QUANTO_BENCH_CPU_SHAPE", "1024,1024,1");
        var rows = new List<IlgpuBenchmarkRow>();
        foreach (var kind in new[] { AcceleratorKind.Cuda, AcceleratorKind.OpenCL })
        {
            try
            {
                using var backend = new IlgpuKernels(new IlgpuOptions
                {
                    Accelerator = kind,
                    AllowOpenCLWithoutGenericAddressSpace = true,
                });
                rows.AddRange(IlgpuBenchmark.Run(backend, gpu[0], gpu[1], gpu[2], iterations: 5));
            }
            catch (NotSupportedException)
            {
                // Not present on this machine.
            }
        }
        rows.AddRange(IlgpuBenchmark.Run(IlgpuTestSupport.Cpu, cpu[0], cpu[1], cpu[2], iterations: 3));
        TestContext.Out.WriteLine(IlgpuBenchmark.ToMarkdown(rows));
    }
}
