using System.Diagnostics;
using System.Globalization;

namespace Quanto.Kernels.Cpu;

/// <summary>
/// One parallel call: <see cref="Run"/> is invoked once for each chunk index in [0, count). The caller and most
/// workers claim chunks from the front; the first worker claims them from the back, so the chunks it will start
/// the next job with are known while it waits (<see cref="PrefetchNext"/>).
/// </summary>
internal abstract class CpuJob
{
    private int _count;
    private long _ends; // low 32 bits: chunks claimed from the front; high 32 bits: from the back
    private int _remaining;
    private Exception? _error;

    /// <summary>Does chunk <paramref name="chunk"/>.</summary>
    public abstract void Run(int chunk);

    /// <summary>
    /// Called on the first worker after it drained this job, while it waits for the next one: a job whose next
    /// call is predictable prefetches what the worker will read first in it (the last chunks, claimed from the
    /// back), stopping as soon as <see cref="CpuParallel.JobArrived"/>(<paramref name="generation"/>) is true. The
    /// caller is then busy with its own work between kernel calls and the memory bus is idle. Does nothing by
    /// default.
    /// </summary>
    internal virtual void PrefetchNext(int generation)
    {
    }

    internal void Reset(int count)
    {
        _count = count;
        _ends = 0;
        _remaining = count;
        _error = null;
    }

    /// <summary>Claims and runs chunks until none are left, from the back when <paramref name="fromBack"/>.
    /// </summary>
    internal void Drain(bool fromBack = false)
    {
        int chunk;
        while ((chunk = Claim(fromBack)) >= 0)
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

    /// <summary>The next unclaimed chunk from the front (or the back), -1 when the two ends have met.</summary>
    private int Claim(bool fromBack)
    {
        while (true)
        {
            long ends = Volatile.Read(ref _ends);
            int front = (int)(ends & 0xffffffff), back = (int)(ends >>> 32);
            if (front + back >= _count) return -1;
            long claimed = fromBack ? ends + (1L << 32) : ends + 1;
            if (Interlocked.CompareExchange(ref _ends, claimed, ends) == ends)
                return fromBack ? _count - 1 - back : front;
        }
    }

    internal bool Finished => Volatile.Read(ref _remaining) == 0;

    internal Exception? Error => _error;
}

/// <summary>
/// A minimal thread pool for kernel calls of 0.1-1 ms: up to <see cref="Threads"/> - 1 dedicated threads that spin
/// briefly after each job (back-to-back layers find them awake, 50 us; 1 ms inside <see cref="Warm"/>) and then
/// block. The caller works too, chunks
/// are claimed with one compare-exchange each (from both ends, see <see cref="CpuJob"/>), and the caller waits for finished chunks, not for sleeping workers to
/// wake. Parallel.For costs more per call (task scheduling, a delegate per iteration); Quanto.Bench measures both
/// (--overhead). A call made while another is in flight runs on its caller alone, so concurrent callers never deadlock.
/// </summary>
/// <remarks>
/// The thread count is this pool's own setting (<see cref="CpuKernels.Threads"/>): libtorch's intra-op threads
/// (torch.set_num_threads) are a separate pool. Workers are started when a count first needs them; lowering the
/// count leaves the extra workers asleep, skipping every job.
/// </remarks>
internal static class CpuParallel
{
    /// <summary>The most threads a job can use (the caller and 63 workers).</summary>
    public const int MaxThreads = 64;

    /// <summary>The environment variable that sets the initial thread count.</summary>
    public const string ThreadsVariable = "QUANTO_NUM_THREADS";

    private static readonly object Gate = new(); // Monitor.Wait/PulseAll need a monitor
    // Short: on a machine shared with libtorch's OpenMP threads (which spin too), a long spin steals their core.
    private static readonly long SpinTicks = Stopwatch.Frequency / 20000; // 50 us
    private static readonly long WarmSpinTicks = Stopwatch.Frequency / 1000; // 1 ms
    private static int _warmScopes;
    private static int _idlePrefetch = 1;
    private static CpuJob? _job;
    private static int _jobWorkers;
    private static int _generation;
    private static int _busy;
    private static int _started;
    private static int _threads = InitialThreads(Environment.GetEnvironmentVariable(ThreadsVariable),
        Environment.ProcessorCount);

    /// <summary>Threads that run a job: the workers plus the caller.</summary>
    public static int Threads
    {
        get => Volatile.Read(ref _threads);
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, MaxThreads);
            Volatile.Write(ref _threads, value);
        }
    }

    /// <summary>
    /// The thread count to start with: <paramref name="setting"/> (the <see cref="ThreadsVariable"/> environment
    /// variable) when it is a whole number in [1, <see cref="MaxThreads"/>], else the processor count (which
    /// DOTNET_PROCESSOR_COUNT overrides), capped at <see cref="MaxThreads"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The variable is set to something else (a typo should not silently give
    /// a different speed).</exception>
    internal static int InitialThreads(string? setting, int processorCount)
    {
        if (string.IsNullOrWhiteSpace(setting)) return Math.Clamp(processorCount, 1, MaxThreads);
        if (int.TryParse(setting, NumberStyles.None, CultureInfo.InvariantCulture, out int threads) &&
            threads is >= 1 and <= MaxThreads)
        {
            return threads;
        }
        throw new ArgumentException(
            $"{ThreadsVariable}='{setting}' is not a thread count; set a whole number from 1 to {MaxThreads}, or unset " +
            "it to use every processor.");
    }

    /// <summary>Runs chunks 0..count-1 of <paramref name="job"/> on up to <see cref="Threads"/> threads; rethrows the
    /// first failure.</summary>
    public static void Run(CpuJob job, int count, bool parallel = true)
    {
        job.Reset(count);
        int workers = Math.Min(Threads, count) - 1;
        if (!parallel || workers <= 0 || Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            job.Drain();
        }
        else
        {
            try
            {
                EnsureStarted(workers);
                Volatile.Write(ref _jobWorkers, workers);
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

    /// <summary>Starts workers until there are <paramref name="workers"/>; only the caller holding the pool
    /// (_busy) gets here, so no two calls start the same worker.</summary>
    private static void EnsureStarted(int workers)
    {
        for (int i = Volatile.Read(ref _started); i < workers; i++)
        {
            int index = i;
            var thread = new Thread(() => WorkerLoop(index)) { IsBackground = true, Name = $"Quanto CPU kernel worker {i}" };
            thread.Start();
            Volatile.Write(ref _started, i + 1);
        }
    }

    /// <summary>
    /// How long a worker spins after a job before it blocks: 1 ms while a <see cref="Warm"/> scope is open anywhere in
    /// the process, else 50 us.
    /// </summary>
    internal static long WorkerSpinTicks => Volatile.Read(ref _warmScopes) > 0 ? WarmSpinTicks : SpinTicks;

    /// <summary>
    /// Keeps the workers spinning for 1 ms after each job, instead of 50 us, until the returned scope is disposed:
    /// for a caller whose jobs come a few hundred microseconds apart while libtorch runs on its thread alone
    /// (<see cref="TorchThreads"/> at one thread opens one), so no OpenMP thread competes for the workers' cores.
    /// A decode step of a 22-layer Llama makes 154 GEMV calls with libtorch's small ops between them; measured on a
    /// 2 vCPU Zen 4 (int4, TinyLlama-1.1B shape, interleaved in one process), a step took 38.0 ms against 41.5 ms
    /// with the 50 us spin, whose workers had gone to sleep between the calls and had to be woken.
    /// </summary>
    internal static WarmScope Warm()
    {
        Interlocked.Increment(ref _warmScopes);
        return new WarmScope(true);
    }

    /// <summary>A <see cref="Warm"/> scope; disposing it ends it (the default value is no scope).</summary>
    internal readonly struct WarmScope(bool open) : IDisposable
    {
        /// <summary>Ends the scope.</summary>
        public void Dispose()
        {
            if (open) Interlocked.Decrement(ref _warmScopes);
        }
    }

    /// <summary>
    /// Whether the first worker prefetches the next job's first chunks while it waits
    /// (<see cref="CpuJob.PrefetchNext"/>); on by default. Measured on a 2 vCPU Zen 4 in a TinyLlama-1.1B-shaped int4 decode
    /// step (154 GEMVs with the caller's small ops between them, 20-40 us each, while the worker spins): Quanto.Bench
    /// --models times it against off in the same rounds.
    /// </summary>
    internal static bool IdlePrefetch
    {
        get => Volatile.Read(ref _idlePrefetch) != 0;
        set => Volatile.Write(ref _idlePrefetch, value ? 1 : 0);
    }

    /// <summary>True once a job newer than <paramref name="generation"/> was posted: a prefetch stops.</summary>
    internal static bool JobArrived(int generation) => Volatile.Read(ref _generation) != generation;

    private static void WorkerLoop(int index)
    {
        int seen = Volatile.Read(ref _generation);
        CpuJob? last = null;
        while (true)
        {
            long until = Stopwatch.GetTimestamp() + WorkerSpinTicks;
            if (last is not null && IdlePrefetch) last.PrefetchNext(seen);
            last = null;
            while (Volatile.Read(ref _generation) == seen && Stopwatch.GetTimestamp() < until) Thread.SpinWait(20);
            if (Volatile.Read(ref _generation) == seen)
            {
                lock (Gate)
                {
                    while (_generation == seen) Monitor.Wait(Gate);
                }
            }
            seen = Volatile.Read(ref _generation);
            // Workers beyond this job's count sit it out (the thread count was lowered, or the job has few chunks).
            if (index < Volatile.Read(ref _jobWorkers) && Volatile.Read(ref _job) is { } job)
            {
                bool first = index == 0;
                job.Drain(fromBack: first);
                if (first) last = job;
            }
        }
    }
}
