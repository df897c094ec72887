using System.Diagnostics;

namespace Quanto.Bench;

/// <summary>Warm-up, then many timed calls; the median is reported (robust to other processes' noise).</summary>
internal static class Timing
{
    /// <summary>Median milliseconds of <paramref name="action"/>(call index): at least
    /// <paramref name="warmupCalls"/> calls and <paramref name="warmupSeconds"/> of warm-up, then calls for
    /// <paramref name="measureSeconds"/> and at least <paramref name="minCalls"/> (fewer, down to 3, when single
    /// calls take longer than the whole budget).</summary>
    public static double MedianMs(Action<int> action, double warmupSeconds = 0.3, double measureSeconds = 1.0,
        int minCalls = 15, int maxCalls = 2000, int warmupCalls = 10)
    {
        int call = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < warmupSeconds || call < warmupCalls)
        {
            action(call++);
            if (call >= 3 && clock.Elapsed.TotalSeconds > 4 * measureSeconds) break; // slow calls: enough warm-up
        }
        var samples = new List<double>();
        clock.Restart();
        while (samples.Count < maxCalls)
        {
            bool enough = clock.Elapsed.TotalSeconds >= measureSeconds;
            if (enough && (samples.Count >= minCalls || samples.Count >= 3 && clock.Elapsed.TotalSeconds >= 3 * measureSeconds))
                break;
            long start = Stopwatch.GetTimestamp();
            action(call++);
            samples.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        samples.Sort();
        int mid = samples.Count / 2;
        return samples.Count % 2 == 1 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2;
    }

    /// <summary>The middle of <paramref name="samples"/> (the upper one of the two middles for an even count),
    /// sorting the list in place.</summary>
    public static double Median(List<double> samples)
    {
        samples.Sort();
        return samples[samples.Count / 2];
    }
}
