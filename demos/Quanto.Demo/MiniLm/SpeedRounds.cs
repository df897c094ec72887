using System.Diagnostics;
using static TorchSharp.torch;

namespace Quanto.Demo.MiniLm;

/// <summary>Something that turns tokenized sentences into normalised embeddings ([Count, hidden] row-major).
/// </summary>
internal interface ISentenceEncoder
{
    /// <summary>The configuration's name in the tables.</summary>
    string Name { get; }

    /// <summary>Embeds one batch.</summary>
    float[] Embed(TokenBatch batch);
}

/// <summary>Sentences per second of one encoder at batch 1 and at batch 32 (medians over the rounds).</summary>
internal sealed record Speed(string Name, double Single, double Batched);

/// <summary>
/// Throughput of several encoders measured side by side: every round runs every encoder once over the same batches,
/// in an order that rotates from round to round, and each encoder's figure is its median round. The machine's speed
/// drifts within minutes (other processes, memory bandwidth that flips between two levels), so only numbers
/// measured interleaved like this are compared, and as ratios.
/// </summary>
internal static class SpeedRounds
{
    /// <summary>Measures every encoder.</summary>
    /// <param name="encoders">What to measure.</param>
    /// <param name="singles">Batch-1 inputs, run one after the other.</param>
    /// <param name="batches">Batch-32 inputs.</param>
    /// <param name="rounds">How many interleaved rounds.</param>
    /// <param name="progress">Told after each round.</param>
    public static List<Speed> Measure(IReadOnlyList<ISentenceEncoder> encoders, IReadOnlyList<TokenBatch> singles,
        IReadOnlyList<TokenBatch> batches, int rounds, Action<int>? progress = null)
    {
        var single = encoders.Select(_ => new List<double>()).ToArray();
        var batched = encoders.Select(_ => new List<double>()).ToArray();
        using var noGrad = no_grad();
        // Warm-up by time, not count: .NET recompiles hot code optimised on a background thread ~100 ms after it
        // stops meeting new methods, and that thread takes one of the two cores while it does.
        foreach (ISentenceEncoder encoder in encoders)
        {
            var warmUp = Stopwatch.StartNew();
            while (warmUp.ElapsedMilliseconds < 300)
            {
                Run(encoder, batches.Take(1));
                Run(encoder, singles.Take(4));
            }
        }
        for (int round = 0; round < rounds; round++)
        {
            for (int k = 0; k < encoders.Count; k++)
            {
                int e = (k + round) % encoders.Count;
                // One untimed call first: ONNX Runtime's threads may still be spinning from the previous encoder.
                Run(encoders[e], singles.Take(1));
                batched[e].Add(Run(encoders[e], batches));
                single[e].Add(Run(encoders[e], singles));
            }
            progress?.Invoke(round + 1);
        }
        return encoders.Select((encoder, e) => new Speed(encoder.Name, Median(single[e]), Median(batched[e])))
            .ToList();
    }

    /// <summary>Sentences per second over the batches, each forward's tensors freed when it ends (as a serving loop
    /// does), so no call runs on freshly faulted memory.</summary>
    private static double Run(ISentenceEncoder encoder, IEnumerable<TokenBatch> batches)
    {
        long sentences = 0;
        long start = Stopwatch.GetTimestamp();
        foreach (TokenBatch batch in batches)
        {
            using (NewDisposeScope()) encoder.Embed(batch);
            sentences += batch.Count;
        }
        return sentences / Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    private static double Median(List<double> values)
    {
        double[] sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1
            ? sorted[sorted.Length / 2]
            : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
