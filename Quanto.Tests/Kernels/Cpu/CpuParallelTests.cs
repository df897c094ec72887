using NUnit.Framework;
using Quanto.Kernels.Cpu;

namespace Quanto.Tests.Kernels.Cpu;

/// <summary>The kernels' thread pool: every chunk exactly once, failures surface, concurrent callers are safe.</summary>
[TestFixture]
public class CpuParallelTests
{
    [Test]
    public void Run_RunsEveryChunkExactlyOnce()
    {
        var job = new CountingJob(1000);
        CpuParallel.Run(job, 1000);
        Assert.That(job.Counts, Has.All.EqualTo(1));
    }

    [Test]
    public void Run_ConcurrentCallers_EachGetAllTheirChunks()
    {
        var jobs = Enumerable.Range(0, 8).Select(_ => new CountingJob(200)).ToArray();
        Parallel.ForEach(jobs, job => CpuParallel.Run(job, 200));
        Assert.That(jobs.SelectMany(j => j.Counts), Has.All.EqualTo(1));
    }

    [Test]
    public void Run_FailingChunk_ThrowsAfterTheOthersFinish()
    {
        var job = new CountingJob(64, failAt: 17);
        var e = Assert.Throws<AggregateException>(() => CpuParallel.Run(job, 64));
        Assert.That(e!.InnerException, Is.TypeOf<InvalidOperationException>());
        Assert.That(job.Counts.Where((_, i) => i != 17), Has.All.EqualTo(1));
    }

    private sealed class CountingJob(int count, int failAt = -1) : CpuJob
    {
        public int[] Counts { get; } = new int[count];

        public override void Run(int chunk)
        {
            if (chunk == failAt) throw new InvalidOperationException("chunk failed");
            Interlocked.Increment(ref Counts[chunk]);
        }
    }
}
