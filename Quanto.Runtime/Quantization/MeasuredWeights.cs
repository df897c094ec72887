using Quanto.Nn;
using Quanto.Tensors;

namespace Quanto.Quantization;

/// <summary>The quantized weights the planner measured, kept per layer and candidate result so that its
/// refinement rounds can put any of them back without quantizing (or running GPTQ) again. Owns them.</summary>
internal sealed class MeasuredWeights : IDisposable
{
    private readonly Dictionary<QModule, List<(CandidateResult Result, QuantizedWeight Weight)>> _weights =
        new(ReferenceEqualityComparer.Instance);

    /// <summary>Keeps <paramref name="weight"/> (now owned here) as <paramref name="module"/>'s
    /// <paramref name="result"/>.</summary>
    internal void Add(QModule module, CandidateResult result, QuantizedWeight weight)
    {
        if (!_weights.TryGetValue(module, out var list)) _weights[module] = list = [];
        list.Add((result, weight));
    }

    /// <summary>The weight kept for this result (the very object the report holds), or null (float, or not kept).
    /// </summary>
    internal QuantizedWeight? Get(QModule module, CandidateResult result) =>
        _weights.TryGetValue(module, out var list)
            ? list.FirstOrDefault(e => ReferenceEquals(e.Result, result)).Weight
            : null;

    /// <summary>Whether a weight is kept for this result.</summary>
    internal bool Has(QModule module, CandidateResult result) => Get(module, result) is not null;

    public void Dispose()
    {
        foreach (var list in _weights.Values)
        {
            foreach ((_, QuantizedWeight w) in list) w.Dispose();
        }
        _weights.Clear();
    }
}
