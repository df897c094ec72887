using static TorchSharp.torch;

namespace Quanto.Models.Llama;

/// <summary>
/// What every decoder layer of one forward pass shares: the rotary cos/sin of the new positions, the additive
/// attention mask (null when a single token attends to everything), and the KV cache (null: no cache, the sequence
/// is processed whole).
/// </summary>
/// <param name="Cos">cos (new, head_dim) in the model's dtype.</param>
/// <param name="Sin">sin (new, head_dim) with its first half negated (see RotaryEmbedding.Rotate).</param>
/// <param name="Mask">Additive mask of 0 and -inf in the model's dtype, (groups x new, total) for queries grouped
/// by key/value head (query head h = kv * groups + g at row g * new + position), or null.</param>
/// <param name="Cache">The cache the layers append to, or null.</param>
public sealed record DecoderContext(Tensor Cos, Tensor Sin, Tensor? Mask, KvCache? Cache)
{
    /// <summary>
    /// The causal mask for <paramref name="count"/> new positions after <paramref name="start"/> cached ones:
    /// position i attends to j when j &lt;= i and, with a sliding window w, i - j &lt; w. Null when nothing is masked.
    /// </summary>
    public static Tensor? CausalMask(long start, long count, long? window, ScalarType dtype, Device device)
    {
        long total = start + count;
        bool windowed = window is long w && total > w;
        if (count == 1 && !windowed) return null;
        using var scope = NewDisposeScope();
        Tensor query = arange(start, total, dtype: ScalarType.Int64, device: device).unsqueeze(1);
        Tensor key = arange(0, total, dtype: ScalarType.Int64, device: device).unsqueeze(0);
        Tensor blocked = key.gt(query);
        if (window is long size) blocked = blocked.logical_or(query.sub(key).ge(size));
        Tensor mask = zeros([count, total], dtype: dtype, device: device)
            .masked_fill_(blocked, double.NegativeInfinity);
        return mask.MoveToOuterDisposeScope();
    }
}
