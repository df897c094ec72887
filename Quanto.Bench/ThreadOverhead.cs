using System.Diagnostics;
using Quanto.Kernels.Cpu;

namespace Quanto.Bench;

/// <summary>
/// Per-call cost of splitting work over the threads: the kernels' CpuParallel versus Parallel.For, on a job shaped
/// like a GEMV (16 chunks of ~20 us of arithmetic, 0.32 ms in all on one thread). A GEMV takes 0.1-1 ms, so tens of
/// microseconds of scheduling matter. Printed with --overhead.
/// </summary>
internal static class ThreadOverhead
{
    public static void Print()
    {
        var job = new BusyJob();
        double serial = Timing.MedianMs(_ => CpuParallel.Run(job, 16, parallel: false), measureSeconds: 1) * 1000;
        double ours = Timing.MedianMs(_ => CpuParallel.Run(job, 16), measureSeconds: 1) * 1000;
        double parallelFor = Timing.MedianMs(_ => Parallel.For(0, 16, job.Run), measureSeconds: 1) * 1000;
        Console.WriteLine($"16 chunks x ~20 us: one thread {serial:F1} us; CpuParallel {ours:F1} us; " +
            $"Parallel.For {parallelFor:F1} us (ideal with {CpuParallel.Threads} threads: " +
            $"{serial / CpuParallel.Threads:F1} us; medians)");
    }

    private sealed class BusyJob : CpuJob
    {
        private static readonly long Ticks = Stopwatch.Frequency / 50000; // 20 us

        public override void Run(int chunk)
        {
            long until = Stopwatch.GetTimestamp() + Ticks;
            while (Stopwatch.GetTimestamp() < until) Thread.SpinWait(10);
        }
    }
}
