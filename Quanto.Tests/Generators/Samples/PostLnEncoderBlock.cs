using static Quanto.QType;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static TorchSharp.torch.nn.functional;

namespace Quanto.Tests.Generators.Samples;

/// <summary>A post-LN transformer encoder block (BERT order): LN(x + attention(x, mask)), then LN(h + MLP(h)), with
/// the attention written inline in forward against an additive mask, in-place ops, and the attention probabilities
/// returned beside the hidden states (a tuple output).</summary>
[Quantize(Weights = QInt4, Group = 32)]
public partial class PostLnEncoderBlock : Module<Tensor, Tensor, (Tensor Hidden, Tensor Attention)>
{
    private readonly long _heads;
    private readonly Module<Tensor, Tensor> query, key, value, dense;
    private readonly Module<Tensor, Tensor> attention_norm, output_norm;
    private readonly Module<Tensor, Tensor> intermediate, output;

    public PostLnEncoderBlock(long dim = 64, long heads = 4) : base(nameof(PostLnEncoderBlock))
    {
        _heads = heads;
        query = Linear(dim, dim);
        key = Linear(dim, dim);
        value = Linear(dim, dim);
        dense = Linear(dim, dim);
        attention_norm = LayerNorm(dim, 1e-12);
        intermediate = Linear(dim, dim * 2);
        output = Linear(dim * 2, dim);
        output_norm = LayerNorm(dim, 1e-12);
        RegisterComponents();
    }

    /// <summary>(batch, seq, dim) and an additive mask (batch, 1, 1, seq): 0 where attended, a large negative where
    /// masked.</summary>
    public override (Tensor Hidden, Tensor Attention) forward(Tensor hidden_states, Tensor attention_mask)
    {
        long batch = hidden_states.shape[0], length = hidden_states.shape[1], dim = hidden_states.shape[2];
        long headDim = dim / _heads;
        Tensor q = query.forward(hidden_states).view(batch, length, _heads, headDim).transpose(1, 2);
        Tensor k = key.forward(hidden_states).view(batch, length, _heads, headDim).transpose(1, 2);
        Tensor v = value.forward(hidden_states).view(batch, length, _heads, headDim).transpose(1, 2);
        Tensor scores = matmul(q, k.transpose(-1, -2));
        scores.div_(System.Math.Sqrt(headDim)).add_(attention_mask);
        Tensor probs = scores.softmax(-1);
        Tensor context = matmul(probs, v).transpose(1, 2).reshape(batch, length, dim);
        Tensor attended = attention_norm.forward(dense.forward(context).add_(hidden_states));
        Tensor result = output_norm.forward(output.forward(gelu(intermediate.forward(attended))) + attended);
        return (result, probs);
    }
}
