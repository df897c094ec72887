using System.Diagnostics;

namespace Quanto.Bench;

/// <summary>Warm-up, then many timed calls; the median is reported (robust to other processes' noise).</summary>
internal static class Timing
{
    /// <summary>Median milliseconds of <paramref name="action"/>(call index).</summary>
    public static double MedianMs(Action<int> action, double warmupSeconds = 0.3, double measureSeconds = 1.0,
        int minCalls = 15, int maxCalls = 2000)
    {
        int call = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < warmupSeconds || call < 10) action(call++);
        var samples = new List<double>();
        clock.Restart();
        while ((clock.Elapsed.TotalSeconds < measureSeconds || samples.Count < minCalls) && samples.Count < maxCalls)
        {
            long start = Stopwatch.GetTimestamp();
            action(call++);
            samples.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        samples.Sort();
        int mid = samples.Count / 2;
        return samples.Count % 2 == 1 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2;
    }
}
