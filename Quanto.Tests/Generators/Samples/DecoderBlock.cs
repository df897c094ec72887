using TorchSharp.Modules;
using static Quanto.QType;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static TorchSharp.torch.nn.functional;

namespace Quanto.Tests.Generators.Samples;

/// <summary>A hand-written RMSNorm (Llama's): a module of its own with one float weight, which the generator leaves
/// float (optimum-quanto keeps norms float too).</summary>
public sealed class RmsNorm : Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double _eps;

    public RmsNorm(long dim, double eps = 1e-6) : base(nameof(RmsNorm))
    {
        weight = new Parameter(ones(dim));
        _eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) =>
        x * rsqrt(x.pow(2).mean([-1], keepdim: true) + _eps) * weight;
}

/// <summary>A Llama-style decoder block with three inputs (hidden states, an additive causal mask, position ids):
/// RMSNorm, causal multi-head self-attention with rotary position embeddings, then RMSNorm and a SwiGLU MLP, each with
/// a residual add.</summary>
[Quantize(Weights = QInt4, Group = 32)]
public partial class DecoderBlock : Module<Tensor, Tensor, Tensor, Tensor>
{
    private readonly long _heads;
    [NoQuantize] private readonly RmsNorm input_layernorm, post_attention_layernorm;
    private readonly Module<Tensor, Tensor> q_proj, k_proj, v_proj, o_proj;
    private readonly Module<Tensor, Tensor> gate_proj, up_proj;
    [Quantize(Weights = QInt8)] private readonly Module<Tensor, Tensor> down_proj;

    public DecoderBlock(long dim = 64, long heads = 4, long hidden = 96) : base(nameof(DecoderBlock))
    {
        _heads = heads;
        input_layernorm = new RmsNorm(dim);
        post_attention_layernorm = new RmsNorm(dim);
        q_proj = Linear(dim, dim, hasBias: false);
        k_proj = Linear(dim, dim, hasBias: false);
        v_proj = Linear(dim, dim, hasBias: false);
        o_proj = Linear(dim, dim, hasBias: false);
        gate_proj = Linear(dim, hidden, hasBias: false);
        up_proj = Linear(dim, hidden, hasBias: false);
        down_proj = Linear(hidden, dim, hasBias: false);
        RegisterComponents();
    }

    /// <summary>(batch, seq, dim), an additive mask (batch, 1, seq, seq), int64 positions (batch, seq).</summary>
    public override Tensor forward(Tensor hidden_states, Tensor attention_mask, Tensor position_ids)
    {
        Tensor residual = hidden_states;
        Tensor h = residual + Attention(input_layernorm.forward(hidden_states), attention_mask, position_ids);
        return h + Mlp(post_attention_layernorm.forward(h));
    }

    private Tensor Attention(Tensor x, Tensor mask, Tensor positions)
    {
        long batch = x.shape[0], length = x.shape[1], dim = x.shape[2], headDim = dim / _heads;
        Tensor q = q_proj.forward(x).view(batch, length, _heads, headDim).transpose(1, 2);
        Tensor k = k_proj.forward(x).view(batch, length, _heads, headDim).transpose(1, 2);
        Tensor v = v_proj.forward(x).view(batch, length, _heads, headDim).transpose(1, 2);
        (Tensor cos, Tensor sin) = Rotary(positions, headDim);
        q = q * cos + RotateHalf(q) * sin;
        k = k * cos + RotateHalf(k) * sin;
        Tensor scores = matmul(q, k.transpose(2, 3)) / System.Math.Sqrt(headDim) + mask;
        Tensor context = matmul(softmax(scores, -1, ScalarType.Float32).to(q.dtype), v);
        return o_proj.forward(context.transpose(1, 2).reshape(batch, length, dim));
    }

    private Tensor Mlp(Tensor x) => down_proj.forward(silu(gate_proj.forward(x)) * up_proj.forward(x));

    private static (Tensor Cos, Tensor Sin) Rotary(Tensor positions, long headDim)
    {
        Tensor inverse = exp(arange(0, headDim, 2, ScalarType.Float32) * (-System.Math.Log(10000.0) / headDim));
        Tensor angles = positions.unsqueeze(-1).to(ScalarType.Float32) * inverse;
        Tensor both = cat([angles, angles], -1).unsqueeze(1);
        return (both.cos(), both.sin());
    }

    private static Tensor RotateHalf(Tensor x)
    {
        long half = x.shape[^1] / 2;
        return cat([-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
    }
}
