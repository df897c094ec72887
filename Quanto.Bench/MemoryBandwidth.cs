using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Quanto.Kernels.Cpu;

namespace Quanto.Bench;

/// <summary>
/// Read bandwidth with every thread the kernels use (the same thread pool), streaming a buffer far larger than any
/// cache; the kernels' "% of bandwidth" is relative to this number, measured in the same run.
/// </summary>
internal static unsafe class MemoryBandwidth
{
    private const long Bytes = 512L << 20;
    private const int Chunks = 128;

    public static double MeasureGBps()
    {
        byte* buffer = (byte*)NativeMemory.AlignedAlloc((nuint)Bytes, 64);
        try
        {
            NativeMemory.Fill(buffer, (nuint)Bytes, 1); // touch every page before timing
            var job = new ReadJob(buffer);
            double ms = Timing.MedianMs(_ => CpuParallel.Run(job, Chunks), 0.5, 2.0, minCalls: 9);
            return Bytes / (ms * 1e6);
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
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
