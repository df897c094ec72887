using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Models.Llama;

/// <summary>
/// transformers' LlamaAttention: q/k/v/o projections, rotary positions on q and k, grouped-query attention (each
/// group of num_attention_heads / num_key_value_heads query heads shares one key/value head, without copying the
/// keys), softmax in float32, and the KV cache.
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
        long batch = hidden_states.shape[0], count = hidden_states.shape[1];
        Tensor q = Heads(q_proj.forward(hidden_states), batch, count, _heads);
        Tensor k = Heads(k_proj.forward(hidden_states), batch, count, _kvHeads);
        Tensor v = Heads(v_proj.forward(hidden_states), batch, count, _kvHeads);
        q = RotaryEmbedding.Apply(q, context.Cos, context.Sin);
        k = RotaryEmbedding.Apply(k, context.Cos, context.Sin);
        if (context.Cache is KvCache cache) (k, v) = cache.Append(_layer, k, v);
        Tensor attended = Attend(q, k, v, context.Mask, batch, count);
        return o_proj.forward(attended.transpose(1, 2).reshape(batch, count, _heads * _headDim));
    }

    private Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? mask, long batch, long count)
    {
        // Query heads h = kv * groups + g share key head kv: view them as (batch, kv, groups * new, head_dim).
        long groups = _heads / _kvHeads, total = k.shape[2];
        Tensor grouped = q.reshape(batch, _kvHeads, groups * count, _headDim);
        Tensor scores = matmul(grouped, k.transpose(2, 3)).to(ScalarType.Float32).mul_(1 / Math.Sqrt(_headDim));
        if (mask is not null)
            scores = scores.view(batch, _kvHeads, groups, count, total).add_(mask).view(batch, _kvHeads, -1, total);
        Tensor probabilities = scores.softmax(-1).to(v.dtype);
        return matmul(probabilities, v).view(batch, _heads, count, _headDim);
    }

    private Tensor Heads(Tensor x, long batch, long count, long heads) =>
        x.view(batch, count, heads, _headDim).transpose(1, 2);
}
