namespace Quanto.Models.Generation;

/// <summary>
/// Picks the next token from a row of logits as transformers' generate does: greedy (argmax) at temperature 0;
/// otherwise logits / temperature, then top-k, then top-p (keep the most likely tokens until their probability
/// reaches p, always at least one), softmax over what is left, and one draw from a seeded generator.
/// </summary>
public sealed class TokenSampler
{
    private readonly GenerationOptions _options;
    private readonly Random _random;

    /// <summary>A sampler for <paramref name="options"/> (its seed, or a random one).</summary>
    public TokenSampler(GenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _random = options.Seed is int seed ? new Random(seed) : new Random();
    }

    /// <summary>The next token for <paramref name="logits"/> (one per vocabulary entry).</summary>
    public long Next(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty) throw new ArgumentException("No logits.", nameof(logits));
        if (_options.Temperature == 0) return ArgMax(logits);
        double[] probabilities = Distribution(logits);
        double u = _random.NextDouble(), cumulative = 0;
        int last = -1;
        for (int i = 0; i < probabilities.Length; i++)
        {
            if (probabilities[i] == 0) continue;
            last = i;
            cumulative += probabilities[i];
            if (u < cumulative) return i;
        }
        return last; // rounding left u just above the total
    }

    /// <summary>The distribution a sampled token is drawn from (zeros for filtered tokens).</summary>
    public double[] Distribution(ReadOnlySpan<float> logits)
    {
        int n = logits.Length;
        var scaled = new double[n];
        double temperature = _options.Temperature == 0 ? 1 : _options.Temperature;
        for (int i = 0; i < n; i++) scaled[i] = logits[i] / temperature;
        int[] order = Enumerable.Range(0, n).OrderByDescending(i => scaled[i]).ThenBy(i => i).ToArray();
        int keep = _options.TopK > 0 ? Math.Min(_options.TopK, n) : n;
        double max = scaled[order[0]];
        var weights = new double[keep];
        double total = 0;
        for (int r = 0; r < keep; r++) total += weights[r] = Math.Exp(scaled[order[r]] - max);
        if (_options.TopP < 1)
        {
            // transformers keeps tokens while the cumulative probability of those before them is below p.
            double cumulative = 0;
            int kept = 0;
            while (kept < keep && (kept == 0 || cumulative < _options.TopP)) cumulative += weights[kept++] / total;
            keep = kept;
            total = weights.Take(keep).Sum();
        }
        var probabilities = new double[n];
        for (int r = 0; r < keep; r++) probabilities[order[r]] = weights[r] / total;
        return probabilities;
    }

    private static long ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best]) best = i;
        }
        return best;
    }
}
