using Quanto.Kernels.Cpu;

namespace Quanto.Bench;

/// <summary>
/// Per-call cost of splitting a tiny job over the threads: the kernels' CpuParallel versus Parallel.For. A GEMV takes
/// 0.1-1 ms, so tens of microseconds matter.
/// </summary>
internal static class ThreadOverhead
{
    public static void Print()
    {
        var job = new NopJob();
        double ours = Timing.MedianMs(_ => CpuParallel.Run(job, 16), measureSeconds: 1) * 1000;
        double parallelFor = Timing.MedianMs(_ => Parallel.For(0, 16, _ => job.Run(0)), measureSeconds: 1) * 1000;
        double single = Timing.MedianMs(_ => CpuParallel.Run(job, 16, parallel: false), measureSeconds: 1) * 1000;
        Console.WriteLine($"Empty 16-chunk job: CpuParallel {ours:F1} us, Parallel.For {parallelFor:F1} us, " +
            $"caller only {single:F1} us (median per call)");
    }

    private sealed class NopJob : CpuJob
    {
        public int Count;

        public override void Run(int chunk) => Interlocked.Increment(ref Count);
    }
}
