using System.Diagnostics;

namespace Quanto.Kernels.Cpu;

/// <summary>One parallel call: <see cref="Run"/> is invoked once for each chunk index in [0, count).</summary>
internal abstract class CpuJob
{
    private int _count;
    private int _next;
    private int _remaining;
    private Exception? _error;

    /// <summary>Does chunk <paramref name="chunk"/>.</summary>
    public abstract void Run(int chunk);

    internal void Reset(int count)
    {
        _count = count;
        _next = 0;
        _remaining = count;
        _error = null;
    }

    /// <summary>Claims and runs chunks until none are left.</summary>
    internal void Drain()
    {
        int chunk;
        while ((chunk = Interlocked.Increment(ref _next) - 1) < _count)
        {
            try
            {
                Run(chunk);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _error, e, null);
            }
            finally
            {
                Interlocked.Decrement(ref _remaining);
            }
        }
    }

    internal bool Finished => Volatile.Read(ref _remaining) == 0;

    internal Exception? Error => _error;
}

/// <summary>
/// A minimal thread pool for kernel calls of 0.1-1 ms: ProcessorCount - 1 dedicated threads that spin briefly after
/// each job (back-to-back layers find them awake, 50 us) and then block. The caller works too, chunks are claimed with one
/// atomic increment each, and the caller waits for finished chunks, not for sleeping workers to wake. Parallel.For
/// costs more per call (task scheduling, a delegate per iteration); Quanto.Bench measures both (--overhead).
/// A call made while another is in flight runs on its caller alone, so concurrent callers never deadlock.
/// </summary>
internal static class CpuParallel
{
    private static readonly object Gate = new(); // Monitor.Wait/PulseAll need a monitor
    // Short: on a machine shared with libtorch's OpenMP threads (which spin too), a long spin steals their core.
    private static readonly long SpinTicks = Stopwatch.Frequency / 20000; // 50 us
    private static readonly int WorkerCount = Math.Min(Environment.ProcessorCount - 1, 63);
    private static CpuJob? _job;
    private static int _generation;
    private static int _busy;
    private static int _started;

    /// <summary>Threads that run a job: the workers plus the caller.</summary>
    public static int Threads => WorkerCount + 1;

    /// <summary>Runs chunks 0..count-1 of <paramref name="job"/> on all threads; rethrows the first failure.</summary>
    public static void Run(CpuJob job, int count, bool parallel = true)
    {
        job.Reset(count);
        if (!parallel || count <= 1 || WorkerCount <= 0 || Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            job.Drain();
        }
        else
        {
            try
            {
                EnsureStarted();
                Volatile.Write(ref _job, job);
                lock (Gate)
                {
                    _generation++;
                    Monitor.PulseAll(Gate);
                }
                job.Drain();
                var spin = new SpinWait();
                while (!job.Finished) spin.SpinOnce(sleep1Threshold: -1);
            }
            finally
            {
                Volatile.Write(ref _job, null);
                Volatile.Write(ref _busy, 0);
            }
        }
        if (job.Error is { } error) throw new AggregateException("A CPU kernel chunk failed.", error);
    }

    private static void EnsureStarted()
    {
        if (Volatile.Read(ref _started) != 0 || Interlocked.Exchange(ref _started, 1) != 0) return;
        for (int i = 0; i < WorkerCount; i++)
        {
            var thread = new Thread(WorkerLoop) { IsBackground = true, Name = $"Quanto CPU kernel worker {i}" };
            thread.Start();
        }
    }

    private static void WorkerLoop()
    {
        int seen = Volatile.Read(ref _generation);
        while (true)
        {
            long until = Stopwatch.GetTimestamp() + SpinTicks;
            while (Volatile.Read(ref _generation) == seen && Stopwatch.GetTimestamp() < until) Thread.SpinWait(20);
            if (Volatile.Read(ref _generation) == seen)
            {
                lock (Gate)
                {
                    while (_generation == seen) Monitor.Wait(Gate);
                }
            }
            seen = Volatile.Read(ref _generation);
            Volatile.Read(ref _job)?.Drain();
        }
    }
}
