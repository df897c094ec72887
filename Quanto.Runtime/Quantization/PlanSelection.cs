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
        long parameters = layers.Sum(l => l.Parameters);
        double budget = bitsPerWeight * parameters;
        List<List<CandidateResult>> hulls = layers.Select(l => Hull(l.Candidates)).ToList();
        var position = new int[layers.Count];
        double used = 0;
        for (int i = 0; i < layers.Count; i++) used += Bits(hulls[i][0], layers[i]);
        if (used > budget * (1 + 1e-12))
        {
            throw new ArgumentOutOfRangeException(nameof(bitsPerWeight), bitsPerWeight,
                $"The cheapest candidates already need {used / parameters:F3} bits per weight; give a budget of at " +
                "least that, or add cheaper candidates.");
        }
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
        return new QuantizationPlan(layers.Select((l, i) =>
        {
            CandidateResult r = chosen[i];
            return new LayerPlan(l.Path, r.Candidate with { GroupSize = r.GroupSize ?? r.Candidate.GroupSize },
                l.Parameters, r.BitsPerWeight, r.LayerError, r.ModelError);
        }), bitsPerWeight);
    }

    /// <summary>Spends what the hull steps left of the budget: while some layer has a candidate (on the hull or
    /// not) that fits the rest and lowers its error, take the one that lowers it most.</summary>
    private static void Fill(List<LayerSensitivity> layers, CandidateResult[] chosen, double left)
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
    private static List<CandidateResult> Hull(IReadOnlyList<CandidateResult> candidates)
    {
        var sorted = candidates.OrderBy(c => c.BitsPerWeight).ThenBy(c => c.ModelError).ToList();
        var frontier = new List<CandidateResult>();
        foreach (CandidateResult c in sorted)
        {
            if (frontier.Count > 0 && c.ModelError >= frontier[^1].ModelError) continue; // dominated
            while (frontier.Count >= 2 && !Convex(frontier[^2], frontier[^1], c)) frontier.RemoveAt(frontier.Count - 1);
            frontier.Add(c);
        }
        return frontier;
    }

    private static bool Convex(CandidateResult a, CandidateResult b, CandidateResult c)
    {
        double s1 = (b.ModelError - a.ModelError) / (b.BitsPerWeight - a.BitsPerWeight);
        double s2 = (c.ModelError - b.ModelError) / (c.BitsPerWeight - b.BitsPerWeight);
        return s2 > s1;
    }
}
