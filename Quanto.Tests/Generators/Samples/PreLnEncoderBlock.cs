using static Quanto.QType;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static TorchSharp.torch.nn.functional;

namespace Quanto.Tests.Generators.Samples;

/// <summary>A pre-LN transformer encoder block (ViT / GPT-2 order): x + attention(LN(x), mask), then h + MLP(LN(h)).
/// Multi-head self-attention sits in a helper that forward calls; the layers are TorchSharp-style
/// <c>Module&lt;Tensor, Tensor&gt;</c> fields, so the eager path takes the same class.</summary>
[Quantize(Weights = QInt8, Activations = QInt8)]
public partial class PreLnEncoderBlock : Module<Tensor, Tensor, Tensor>
{
    private const int Heads = 4;
    private readonly Module<Tensor, Tensor> ln1, ln2;
    private readonly Module<Tensor, Tensor> q_proj, k_proj, v_proj, out_proj;
    private readonly Module<Tensor, Tensor> fc1, fc2;
    private readonly Module<Tensor, Tensor> dropout = Dropout(0.1);

    public PreLnEncoderBlock(long dim = 32) : base(nameof(PreLnEncoderBlock))
    {
        ln1 = LayerNorm(dim);
        ln2 = LayerNorm(dim);
        q_proj = Linear(dim, dim);
        k_proj = Linear(dim, dim);
        v_proj = Linear(dim, dim);
        out_proj = Linear(dim, dim);
        fc1 = Linear(dim, dim * 4);
        fc2 = Linear(dim * 4, dim);
        RegisterComponents();
    }

    /// <summary>(batch, seq, dim) and a boolean key-padding mask (batch, seq), true where padded.</summary>
    public override Tensor forward(Tensor x, Tensor padding)
    {
        Tensor h = x + dropout.forward(SelfAttention(ln1.forward(x), padding));
        return h + dropout.forward(fc2.forward(gelu(fc1.forward(ln2.forward(h)))));
    }

    private Tensor SelfAttention(Tensor x, Tensor padding)
    {
        long batch = x.shape[0], length = x.shape[1], dim = x.shape[2];
        Tensor q = SplitHeads(q_proj.forward(x));
        Tensor k = SplitHeads(k_proj.forward(x));
        Tensor v = SplitHeads(v_proj.forward(x));
        Tensor scores = matmul(q, k.transpose(-2, -1)).div_(System.Math.Sqrt(dim / Heads));
        scores = scores.masked_fill(padding.view(batch, 1, 1, length), double.NegativeInfinity);
        Tensor weights = dropout.forward(softmax(scores, -1));
        Tensor context = matmul(weights, v).transpose(1, 2).contiguous().view(batch, length, dim);
        return out_proj.forward(context);
    }

    private static Tensor SplitHeads(Tensor t) => t.view(t.shape[0], t.shape[1], Heads, -1).transpose(1, 2);
}
