using System.Collections.Concurrent;
using System.Diagnostics;
using static TorchSharp.torch;

namespace Quanto.Kernels.Cpu;

/// <summary>
/// The float-activation dispatch of small weights: per weight shape and row count, whether the quantized kernel or
/// libtorch's F.linear on the weight's float32 copy (<see cref="CpuPreparedWeight.FloatCopy"/>) is faster, measured
/// the first time that (format, K, N, row bucket) comes up: a warm-up call of each, then three alternating timed calls
/// of each, the lower minimum wins. Both compute x · dequant(W)ᵀ in float32, so the choice changes results only by
/// float rounding, and it is made once per process for every weight of that shape (the same layer in two models
/// takes the same route). Layers too large for a copy always run the kernel.
/// </summary>
internal static class FloatCopyRoutes
{
    private static readonly ConcurrentDictionary<Key, bool> UseCopy = new();
    private static readonly Lock Gate = new();

    /// <summary>The decisions made so far (the bench prints them).</summary>
    public static IReadOnlyDictionary<Key, bool> Decisions => UseCopy;

    /// <summary>Forgets every decision (tests).</summary>
    internal static void Reset() => UseCopy.Clear();

    /// <summary>Sets a decision without measuring (tests run each route).</summary>
    internal static void Force(Key key, bool useCopy) => UseCopy[key] = useCopy;

    /// <summary>Powers of two: rows 1, 2-3, 4-7, ... share a decision.</summary>
    public static int Bucket(int rows) => rows <= 1 ? 0 : 31 - int.LeadingZeroCount(rows);

    /// <summary>y from the faster of <paramref name="kernel"/> and <paramref name="copy"/> for this key, measuring
    /// both the first time.</summary>
    public static Tensor Run(Key key, Func<Tensor> kernel, Func<Tensor> copy)
    {
        if (UseCopy.TryGetValue(key, out bool useCopy)) return useCopy ? copy() : kernel();
        lock (Gate)
        {
            if (UseCopy.TryGetValue(key, out useCopy)) return useCopy ? copy() : kernel();
            kernel().Dispose();
            copy().Dispose();
            double kernelTime = double.MaxValue, copyTime = double.MaxValue;
            for (int i = 0; i < 3; i++)
            {
                kernelTime = Math.Min(kernelTime, Time(kernel));
                copyTime = Math.Min(copyTime, Time(copy));
            }
            useCopy = copyTime < kernelTime;
            UseCopy[key] = useCopy;
            return useCopy ? copy() : kernel();
        }
    }

    private static double Time(Func<Tensor> run)
    {
        long start = Stopwatch.GetTimestamp();
        run().Dispose();
        return Stopwatch.GetElapsedTime(start).TotalMicroseconds;
    }

    /// <summary>What a decision is made for.</summary>
    internal readonly record struct Key(CpuWeightFormat Format, int K, int N, int RowBucket, bool Bias);
}
