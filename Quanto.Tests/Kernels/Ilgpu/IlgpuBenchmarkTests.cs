using NUnit.Framework;
using Quanto.Kernels.Ilgpu;

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

    /// <summary>The bench-table numbers, run by hand: <c>dotnet test --filter Name=BenchTable</c> (minutes).
    /// QUANTO_BENCH_SHAPE="N,K,M" overrides the 4096 x 4096 GEMV; the CPU accelerator runs 1024 x 1024.</summary>
    [Test, Explicit("slow: produces the benchmark table")]
    public void BenchTable()
    {
        int[] shape = (Environment.GetEnvironmentVariable("QUANTO_BENCH_SHAPE") ?? "4096,4096,1").Split(',')
            .Select(int.Parse).ToArray();
        var rows = IlgpuBenchmark.RunEveryAccelerator(shape[0], shape[1], shape[2], iterations: 3);
        TestContext.Out.WriteLine(IlgpuBenchmark.ToMarkdown(rows));
    }
}
