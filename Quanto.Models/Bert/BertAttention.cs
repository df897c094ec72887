using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Models.Bert;

/// <summary>transformers' BertSelfAttention: query, key, value projections and scaled dot-product attention.
/// </summary>
[Quantize]
public sealed partial class BertSelfAttention : Module<Tensor, Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> query;
    private readonly Module<Tensor, Tensor> key;
    private readonly Module<Tensor, Tensor> value;
    private readonly long _heads;
    private readonly long _headDim;

    /// <summary>Builds the projections for <paramref name="config"/>.</summary>
    public BertSelfAttention(BertConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(BertSelfAttention))
    {
        ArgumentNullException.ThrowIfNull(config);
        _heads = config.NumAttentionHeads;
        _headDim = config.HeadDim;
        query = Linear(config.HiddenSize, config.HiddenSize, device: device, dtype: dtype);
        key = Linear(config.HiddenSize, config.HiddenSize, device: device, dtype: dtype);
        value = Linear(config.HiddenSize, config.HiddenSize, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <summary>(batch, seq, hidden) and the additive mask (batch, 1, 1, seq) -> the attention context.</summary>
    public override Tensor forward(Tensor hidden_states, Tensor attention_mask)
    {
        long batch = hidden_states.shape[0], length = hidden_states.shape[1];
        Tensor q = Heads(query.forward(hidden_states), batch, length);
        Tensor k = Heads(key.forward(hidden_states), batch, length);
        Tensor v = Heads(value.forward(hidden_states), batch, length);
        Tensor scores = matmul(q, k.transpose(-1, -2)).div_(Math.Sqrt(_headDim)).add_(attention_mask);
        Tensor context = matmul(scores.softmax(-1), v);
        return context.transpose(1, 2).reshape(batch, length, _heads * _headDim);
    }

    private Tensor Heads(Tensor x, long batch, long length) => x.view(batch, length, _heads, _headDim).transpose(1, 2);
}

/// <summary>transformers' BertSelfOutput: dense projection, residual add, LayerNorm.</summary>
[Quantize]
public sealed partial class BertSelfOutput : Module<Tensor, Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> dense;
    private readonly Module<Tensor, Tensor> LayerNorm;

    /// <summary>Builds the projection for <paramref name="config"/>.</summary>
    public BertSelfOutput(BertConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(BertSelfOutput))
    {
        ArgumentNullException.ThrowIfNull(config);
        dense = Linear(config.HiddenSize, config.HiddenSize, device: device, dtype: dtype);
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <summary>LayerNorm(dense(context) + residual).</summary>
    public override Tensor forward(Tensor hidden_states, Tensor input_tensor) =>
        LayerNorm.forward(dense.forward(hidden_states).add_(input_tensor));
}

/// <summary>transformers' BertAttention: self-attention then its output block.</summary>
[Quantize]
public sealed partial class BertAttention : Module<Tensor, Tensor, Tensor>
{
    private readonly BertSelfAttention self;
    private readonly BertSelfOutput output;

    /// <summary>Builds the block for <paramref name="config"/>.</summary>
    public BertAttention(BertConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(BertAttention))
    {
        self = new BertSelfAttention(config, device, dtype);
        output = new BertSelfOutput(config, device, dtype);
        RegisterComponents();
    }

    /// <summary>Attention with residual and LayerNorm.</summary>
    public override Tensor forward(Tensor hidden_states, Tensor attention_mask) =>
        output.forward(self.forward(hidden_states, attention_mask), hidden_states);
}
