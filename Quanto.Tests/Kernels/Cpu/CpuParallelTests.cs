using System.Diagnostics;
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

    /// <summary>The first worker claims chunks from the back, everyone else from the front: alone, a back drain
    /// runs them last to first; two threads draining from both ends at once meet without running a chunk twice or
    /// skipping one, for every count (the ends' packed counter, compare-exchanged).</summary>
    [Test]
    public void Drain_FromBothEnds_RunsEveryChunkExactlyOnce()
    {
        var order = new OrderJob(5);
        order.Reset(5);
        order.Drain(fromBack: true);
        Assert.That(order.Order, Is.EqualTo(new[] { 4, 3, 2, 1, 0 }));
        for (int count = 0; count <= 40; count++)
        {
            for (int attempt = 0; attempt < 20; attempt++)
            {
                var job = new CountingJob(count);
                job.Reset(count);
                using var start = new Barrier(2);
                var back = Task.Run(() =>
                {
                    start.SignalAndWait();
                    job.Drain(fromBack: true);
                });
                start.SignalAndWait();
                job.Drain();
                back.Wait();
                Assert.That(job.Counts, Has.All.EqualTo(1), $"{count} chunks, attempt {attempt}");
                Assert.That(job.Finished, Is.True);
            }
        }
    }

    [Test]
    public void ThreadCount_One_RunsEveryChunkOnTheCaller()
    {
        var job = new ThreadRecordingJob(64);
        WithThreads(1, () => CpuParallel.Run(job, 64));
        Assert.That(job.ThreadIds.Distinct(), Is.EqualTo(new[] { Environment.CurrentManagedThreadId }));
    }

    [Test]
    public void ThreadCount_LimitsTheThreadsOfOneJob()
    {
        // Chunks long enough (0.2 ms) that every allowed worker wakes and joins in.
        var job = new ThreadRecordingJob(200, spinMicroseconds: 200);
        WithThreads(2, () => CpuParallel.Run(job, 200));
        Assert.That(job.ThreadIds.Distinct().Count(), Is.InRange(1, 2));
        Assert.That(job.ThreadIds, Has.All.Not.EqualTo(0), "every chunk ran");
    }

    [Test]
    public void ThreadCount_IsPublicAndChecked()
    {
        int before = CpuKernels.Threads;
        Assert.That(before, Is.EqualTo(CpuParallel.Threads).And.InRange(1, CpuParallel.MaxThreads));
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuKernels.Threads = 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuKernels.Threads = CpuParallel.MaxThreads + 1);
        Assert.That(CpuKernels.Threads, Is.EqualTo(before));
    }

    /// <summary>Workers spin 50 us after a job, 1 ms while libtorch is held to one thread (a decode step's small ops
    /// between GEMVs), until the last such scope ends; a scope that changes nothing (null) keeps the short spin.
    /// </summary>
    [Test]
    public void WorkersStayWarmWhileLibtorchRunsOnOneThread()
    {
        long shortSpin = Stopwatch.Frequency / 20000, warmSpin = Stopwatch.Frequency / 1000;
        Assert.That(CpuParallel.WorkerSpinTicks, Is.EqualTo(shortSpin), "no scope open");
        using (new TorchThreads(null)) Assert.That(CpuParallel.WorkerSpinTicks, Is.EqualTo(shortSpin), "null scope");
        using (new TorchThreads(1))
        {
            Assert.That(CpuParallel.WorkerSpinTicks, Is.EqualTo(warmSpin), "one libtorch thread");
            using (new TorchThreads(1)) Assert.That(CpuParallel.WorkerSpinTicks, Is.EqualTo(warmSpin), "nested");
            Assert.That(CpuParallel.WorkerSpinTicks, Is.EqualTo(warmSpin), "outer scope still open");
        }
        Assert.That(CpuParallel.WorkerSpinTicks, Is.EqualTo(shortSpin), "every scope closed");
    }

    [TestCase(null, 6, 6)]
    [TestCase("", 6, 6)]
    [TestCase("3", 6, 3)]
    [TestCase("12", 6, 12)]
    [TestCase(null, 200, 64)]
    public void InitialThreads_FromTheVariableElseTheProcessorCount(string? setting, int processors, int expected) =>
        Assert.That(CpuParallel.InitialThreads(setting, processors), Is.EqualTo(expected));

    [TestCase("0")]
    [TestCase("-2")]
    [TestCase("four")]
    [TestCase("65")]
    public void InitialThreads_ABadVariableIsAClearError(string setting)
    {
        var e = Assert.Throws<ArgumentException>(() => CpuParallel.InitialThreads(setting, 4));
        Assert.That(e!.Message, Does.Contain(CpuParallel.ThreadsVariable).And.Contain(setting));
    }

    private static void WithThreads(int threads, Action action)
    {
        int before = CpuKernels.Threads;
        CpuKernels.Threads = threads;
        try
        {
            action();
        }
        finally
        {
            CpuKernels.Threads = before;
        }
    }

    private sealed class ThreadRecordingJob(int count, int spinMicroseconds = 0) : CpuJob
    {
        public int[] ThreadIds { get; } = new int[count];

        public override void Run(int chunk)
        {
            long until = System.Diagnostics.Stopwatch.GetTimestamp() +
                System.Diagnostics.Stopwatch.Frequency * spinMicroseconds / 1_000_000;
            while (System.Diagnostics.Stopwatch.GetTimestamp() < until) Thread.SpinWait(10);
            ThreadIds[chunk] = Environment.CurrentManagedThreadId;
        }
    }

    private sealed class OrderJob(int count) : CpuJob
    {
        public List<int> Order { get; } = new(count);

        public override void Run(int chunk) => Order.Add(chunk);
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
