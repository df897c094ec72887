using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Models.Llama;

/// <summary>
/// transformers' LlamaAttention: q/k/v/o projections, rotary positions on q and k, grouped-query attention (each
/// group of num_attention_heads / num_key_value_heads query heads shares one key/value head, without copying the
/// keys), softmax in float32 (libtorch's fused scaled dot-product attention for large score matrices, see
/// <see cref="FusedAttention"/>), and the KV cache. A float32 CPU decode step (one new position, nothing masked)
/// runs all of it after the projections in one pass (<see cref="DecodeAttention"/>).
/// </summary>
[Quantize]
public sealed partial class LlamaAttention : Module<Tensor, DecoderContext, Tensor>
{
    private readonly Module<Tensor, Tensor> q_proj;
    private readonly Module<Tensor, Tensor> k_proj;
    private readonly Module<Tensor, Tensor> v_proj;
    private readonly Module<Tensor, Tensor> o_proj;
    private readonly int _layer;
    private readonly long _heads, _kvHeads, _headDim;

    /// <summary>Builds the projections of layer <paramref name="layer"/>.</summary>
    public LlamaAttention(LlamaConfig config, int layer, Device? device = null, ScalarType? dtype = null)
        : base(nameof(LlamaAttention))
    {
        ArgumentNullException.ThrowIfNull(config);
        _layer = layer;
        _heads = config.NumAttentionHeads;
        _kvHeads = config.NumKeyValueHeads;
        _headDim = config.HeadDim;
        long hidden = config.HiddenSize;
        q_proj = Linear(hidden, _heads * _headDim, config.QkvBias, device, dtype);
        k_proj = Linear(hidden, _kvHeads * _headDim, config.QkvBias, device, dtype);
        v_proj = Linear(hidden, _kvHeads * _headDim, config.QkvBias, device, dtype);
        o_proj = Linear(_heads * _headDim, hidden, config.OutputBias, device, dtype);
        RegisterComponents();
    }

    /// <summary>(batch, new, hidden) -> (batch, new, hidden), attending to the cached positions and the new ones.
    /// </summary>
    public override Tensor forward(Tensor hidden_states, DecoderContext context)
    {
        long batch = hidden_states.size(0), count = hidden_states.size(1);
        Tensor queries = q_proj.forward(hidden_states);
        Tensor keys = k_proj.forward(hidden_states);
        Tensor values = v_proj.forward(hidden_states);
        if (DecodeAttention.Runs(queries, keys, values, context))
        {
            return o_proj.forward(DecodeAttention.Step(queries, keys, values, context, _layer, _heads, _kvHeads,
                _headDim));
        }
        Tensor q = Heads(queries, batch, count, _heads);
        Tensor k = Heads(keys, batch, count, _kvHeads);
        Tensor v = Heads(values, batch, count, _kvHeads);
        q = RotaryEmbedding.Rotate(q, context.Cos, context.Sin);
        k = RotaryEmbedding.Rotate(k, context.Cos, context.Sin);
        if (context.Cache is KvCache cache) (k, v) = cache.Append(_layer, k, v);
        Tensor attended = Attend(q, k, v, context.Mask, batch, count);
        return o_proj.forward(attended.transpose(1, 2).reshape(batch, count, _heads * _headDim));
    }

    private Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? mask, long batch, long count)
    {
        // Query heads h = kv * groups + g share key head kv: view them as (batch, kv, groups * new, head_dim), so
        // each cached key is read once for its whole group (the mask is laid out to match).
        long groups = _heads / _kvHeads, total = k.shape[2];
        Tensor grouped = q.reshape(batch, _kvHeads, groups * count, _headDim);
        if (FusedAttention.Pays(batch * _heads * count * total))
        {
            Tensor fused = functional.scaled_dot_product_attention(grouped, k, v, mask);
            return fused.reshape(batch, _heads, count, _headDim);
        }
        Tensor scores = matmul(grouped, k.transpose(2, 3)).to(ScalarType.Float32).mul_(1 / Math.Sqrt(_headDim));
        if (mask is not null) scores = scores.add_(mask);
        Tensor probabilities = scores.softmax(-1).to(v.dtype);
        return matmul(probabilities, v).view(batch, _heads, count, _headDim);
    }

    private Tensor Heads(Tensor x, long batch, long count, long heads) =>
        x.view(batch, count, heads, _headDim).transpose(1, 2);
}
