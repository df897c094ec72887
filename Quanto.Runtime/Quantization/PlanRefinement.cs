using Quanto.Nn;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>
/// Re-scores a plan in context, so that errors that compound are seen: with every layer quantized as planned, each
/// layer's candidates near its current choice (up to <see cref="Neighbours"/> each side on its measured
/// (bits, model error) frontier) are tried one at a time and the model's output error measured; the knapsack then
/// picks again from those in-context errors, and the new plan is kept only if the model measured with it is closer
/// to float. Each round costs at most 2 x <see cref="Neighbours"/> passes per layer, plus one for the new plan.
/// </summary>
internal static class PlanRefinement
{
    /// <summary>Candidates tried on each side of a layer's current choice.</summary>
    internal const int Neighbours = 2;

    internal static (CandidateResult[] Chosen, double Error) Run(IReadOnlyList<QModule> modules, Func<Tensor> pass,
        IReadOnlyList<LayerSensitivity> layers, CandidateResult[] chosen, MeasuredWeights weights,
        double bitsPerWeight, int rounds, IProgress<QuantizationProgress>? progress)
    {
        var byPath = modules.ToDictionary(m => m.Path, StringComparer.Ordinal);
        QModule[] targets = layers.Select(l => byPath[l.Path]).ToArray();
        var current = new Tensor?[targets.Length];
        using ModuleProbe probe = ModuleProbe.Attach(modules);
        try
        {
            using Tensor baseline = probe.Run(pass);
            double Error()
            {
                using Tensor output = probe.Run(pass);
                return SensitivityMeasure.RelativeSquaredError(baseline, output);
            }
            void Apply(CandidateResult[] plan)
            {
                for (int i = 0; i < targets.Length; i++)
                {
                    current[i]?.Dispose();
                    current[i] = weights.Get(targets[i], plan[i])?.Dequantize().DetachFromDisposeScope();
                    probe.SetWeight(targets[i], current[i]);
                }
            }
            using var noGrad = no_grad();
            Apply(chosen);
            double error = Error();
            for (int round = 1; round <= rounds; round++)
            {
                var local = new List<LayerSensitivity>();
                var origin = new Dictionary<CandidateResult, CandidateResult>(ReferenceEqualityComparer.Instance);
                for (int i = 0; i < targets.Length; i++)
                {
                    string stage = $"plan round {round}";
                    progress?.Report(new QuantizationProgress(stage, layers[i].Path, i, targets.Length, 0));
                    List<CandidateResult> window = Window(layers[i], chosen[i], targets[i], weights);
                    var scored = new List<CandidateResult>();
                    for (int k = 0; k < window.Count; k++)
                    {
                        CandidateResult c = window[k];
                        double e = ReferenceEquals(c, chosen[i]) ? error : Swapped(probe, targets[i], current[i],
                            weights.Get(targets[i], c), Error);
                        CandidateResult s = c with { ModelError = e };
                        origin[s] = c;
                        scored.Add(s);
                        progress?.Report(new QuantizationProgress(stage, layers[i].Path, i, targets.Length,
                            (k + 1.0) / window.Count));
                    }
                    local.Add(layers[i] with { Candidates = scored });
                }
                CandidateResult[] picked = PlanSelection.Choose(local, bitsPerWeight).Select(r => origin[r]).ToArray();
                if (picked.Zip(chosen).All(p => ReferenceEquals(p.First, p.Second))) break;
                Apply(picked);
                double next = Error();
                if (next >= error)
                {
                    Apply(chosen);
                    break;
                }
                chosen = picked;
                error = next;
            }
            return (chosen, error);
        }
        finally
        {
            foreach (Tensor? t in current) t?.Dispose();
        }
    }

    /// <summary>The layer's kept candidates around its current choice, cheapest first.</summary>
    private static List<CandidateResult> Window(LayerSensitivity layer, CandidateResult chosen, QModule module,
        MeasuredWeights weights)
    {
        List<CandidateResult> frontier = layer.Candidates
            .Where(c => ReferenceEquals(c, chosen) || c.Candidate.Weights is null || weights.Has(module, c))
            .OrderBy(c => c.BitsPerWeight).ThenBy(c => c.ModelError).ToList();
        int at = frontier.FindIndex(c => ReferenceEquals(c, chosen));
        int from = Math.Max(0, at - Neighbours), to = Math.Min(frontier.Count, at + Neighbours + 1);
        return frontier.GetRange(from, to - from);
    }

    /// <summary>The model's error with one layer swapped to <paramref name="candidate"/> (null: float), then put
    /// back to <paramref name="current"/>.</summary>
    private static double Swapped(ModuleProbe probe, QModule module, Tensor? current, QuantizedWeight? candidate,
        Func<double> error)
    {
        using Tensor? dq = candidate?.Dequantize();
        probe.SetWeight(module, dq);
        try
        {
            return error();
        }
        finally
        {
            probe.SetWeight(module, current);
        }
    }
}
