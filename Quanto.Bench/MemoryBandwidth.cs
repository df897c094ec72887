using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Quanto.Kernels.Cpu;

namespace Quanto.Bench;

/// <summary>
/// Read bandwidth with every thread the kernels use (the same thread pool), streaming a buffer far larger than any
/// cache; the kernels' "% of bandwidth" is relative to this number, measured in the same run just before each format
/// row (on the shared VM it flips between about 30 and 55 GB/s within minutes). One probe takes about 0.1 s: the
/// 256 MiB buffer is allocated and touched once per process.
/// </summary>
internal static unsafe class MemoryBandwidth
{
    private const long Bytes = 256L << 20;
    private const int Chunks = 64;
    private static byte* _buffer;

    public static double MeasureGBps()
    {
        if (_buffer == null)
        {
            _buffer = (byte*)NativeMemory.AlignedAlloc((nuint)Bytes, 64);
            NativeMemory.Fill(_buffer, (nuint)Bytes, 1); // touch every page before timing
        }
        var job = new ReadJob(_buffer);
        double ms = Timing.MedianMs(_ => CpuParallel.Run(job, Chunks), warmupSeconds: 0, measureSeconds: 0.05,
            minCalls: 7, warmupCalls: 2);
        return Bytes / (ms * 1e6);
    }

    private sealed class ReadJob(byte* buffer) : CpuJob
    {
        public long Sink;

        public override void Run(int chunk)
        {
            const long size = Bytes / Chunks;
            byte* p = buffer + chunk * size;
            Vector256<long> a0 = default, a1 = default, a2 = default, a3 = default;
            for (long i = 0; i < size; i += 128)
            {
                a0 ^= Vector256.Load((long*)(p + i));
                a1 ^= Vector256.Load((long*)(p + i + 32));
                a2 ^= Vector256.Load((long*)(p + i + 64));
                a3 ^= Vector256.Load((long*)(p + i + 96));
            }
            Interlocked.Add(ref Sink, Vector256.Sum(a0 ^ a1 ^ a2 ^ a3));
        }
    }
}
