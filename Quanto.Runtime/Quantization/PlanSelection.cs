namespace Quanto.Quantization;

/// <summary>
/// Picks one candidate per layer to minimise the summed model error under a bits-per-weight budget (a
/// multiple-choice knapsack): each layer's candidates are cut to their lower convex hull in (bits, error), every
/// layer starts at its cheapest point, and the upgrade that buys the most error per extra bit is taken while it
/// fits the budget; what is left is then spent on the single changes that lower the error most. Errors of small
/// perturbations add to first order, which is what makes the sum the target.
/// </summary>
internal static class PlanSelection
{
    internal static QuantizationPlan Select(SensitivityReport sensitivity, double bitsPerWeight)
    {
        var layers = sensitivity.Layers.Where(l => l.Candidates.Count > 0).ToList();
        CandidateResult[] chosen = Choose(layers, bitsPerWeight);
        return Build(layers, chosen, bitsPerWeight, double.NaN);
    }

    /// <summary>The plan of one choice per layer.</summary>
    internal static QuantizationPlan Build(IReadOnlyList<LayerSensitivity> layers, IReadOnlyList<CandidateResult> chosen,
        double bitsPerWeight, double measuredModelError) =>
        new(layers.Select((l, i) =>
        {
            CandidateResult r = chosen[i];
            return new LayerPlan(l.Path, r.Candidate with { GroupSize = r.GroupSize ?? r.Candidate.GroupSize },
                l.Parameters, r.BitsPerWeight, r.LayerError, r.ModelError);
        }), bitsPerWeight, measuredModelError);

    /// <summary>Mean bits per weight of the cheapest candidate of every layer: the smallest budget a plan meets.
    /// </summary>
    internal static double MinimumBits(IReadOnlyList<LayerSensitivity> layers)
    {
        long parameters = layers.Sum(l => l.Parameters);
        return parameters == 0 ? 0 : layers.Sum(l => l.Candidates.Min(c => c.BitsPerWeight) * l.Parameters) / parameters;
    }

    /// <summary>The error message of a budget below <paramref name="minimum"/>.</summary>
    internal static string BelowMinimum(double minimum) =>
        $"The cheapest candidates already need {minimum:F3} bits per weight (the least these candidates reach, " +
        "scales and shifts counted); give a budget of at least that, or add cheaper candidates.";

    /// <summary>One candidate per layer (each layer's candidates non-empty) minimising the summed model error
    /// within the budget.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The cheapest candidates exceed the budget.</exception>
    internal static CandidateResult[] Choose(IReadOnlyList<LayerSensitivity> layers, double bitsPerWeight)
    {
        long parameters = layers.Sum(l => l.Parameters);
        double budget = bitsPerWeight * parameters;
        List<List<CandidateResult>> hulls = layers.Select(l => Hull(l.Candidates, c => c.ModelError)).ToList();
        var position = new int[layers.Count];
        double used = 0;
        for (int i = 0; i < layers.Count; i++) used += Bits(hulls[i][0], layers[i]);
        if (used > budget * (1 + 1e-12))
            throw new ArgumentOutOfRangeException(nameof(bitsPerWeight), bitsPerWeight, BelowMinimum(used / parameters));
        while (true)
        {
            int best = -1;
            double bestSlope = 0;
            for (int i = 0; i < layers.Count; i++)
            {
                if (position[i] + 1 >= hulls[i].Count) continue;
                CandidateResult now = hulls[i][position[i]], next = hulls[i][position[i] + 1];
                double extra = Bits(next, layers[i]) - Bits(now, layers[i]);
                if (used + extra > budget * (1 + 1e-12)) continue;
                double slope = (next.ModelError - now.ModelError) / extra;
                if (slope < bestSlope)
                {
                    bestSlope = slope;
                    best = i;
                }
            }
            if (best < 0) break;
            used += Bits(hulls[best][position[best] + 1], layers[best]) -
                    Bits(hulls[best][position[best]], layers[best]);
            position[best]++;
        }
        CandidateResult[] chosen = layers.Select((_, i) => hulls[i][position[i]]).ToArray();
        Fill(layers, chosen, budget - used);
        return chosen;
    }

    /// <summary>Spends what the hull steps left of the budget: while some layer has a candidate (on the hull or
    /// not) that fits the rest and lowers its error, take the one that lowers it most.</summary>
    private static void Fill(IReadOnlyList<LayerSensitivity> layers, CandidateResult[] chosen, double left)
    {
        while (true)
        {
            (int Layer, CandidateResult Candidate, double Gain, double Extra) best = (-1, chosen[0], 0, 0);
            for (int i = 0; i < layers.Count; i++)
            {
                foreach (CandidateResult c in layers[i].Candidates)
                {
                    double extra = Bits(c, layers[i]) - Bits(chosen[i], layers[i]);
                    double gain = chosen[i].ModelError - c.ModelError;
                    if (gain > best.Gain && extra <= left * (1 + 1e-12)) best = (i, c, gain, extra);
                }
            }
            if (best.Layer < 0) return;
            chosen[best.Layer] = best.Candidate;
            left -= best.Extra;
        }
    }

    private static double Bits(CandidateResult r, LayerSensitivity layer) => r.BitsPerWeight * layer.Parameters;

    /// <summary>The candidates on the lower convex hull of (bits, error), cheapest first: any candidate above it
    /// is beaten by a mix of its neighbours.</summary>
    internal static List<CandidateResult> Hull(IReadOnlyList<CandidateResult> candidates,
        Func<CandidateResult, double> error)
    {
        var frontier = new List<CandidateResult>();
        foreach (CandidateResult c in Pareto(candidates, error))
        {
            while (frontier.Count >= 2 && !Convex(frontier[^2], frontier[^1], c, error))
                frontier.RemoveAt(frontier.Count - 1);
            frontier.Add(c);
        }
        return frontier;
    }

    /// <summary>The candidates no other beats in both bits and error, cheapest first.</summary>
    internal static List<CandidateResult> Pareto(IReadOnlyList<CandidateResult> candidates,
        Func<CandidateResult, double> error)
    {
        var frontier = new List<CandidateResult>();
        foreach (CandidateResult c in candidates.OrderBy(c => c.BitsPerWeight).ThenBy(error))
        {
            if (frontier.Count > 0 && error(c) >= error(frontier[^1])) continue; // dominated
            frontier.Add(c);
        }
        return frontier;
    }

    private static bool Convex(CandidateResult a, CandidateResult b, CandidateResult c,
        Func<CandidateResult, double> error)
    {
        double s1 = (error(b) - error(a)) / (b.BitsPerWeight - a.BitsPerWeight);
        double s2 = (error(c) - error(b)) / (c.BitsPerWeight - b.BitsPerWeight);
        return s2 > s1;
    }
}
