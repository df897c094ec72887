using TorchSharp.Modules;
using static Quanto.QType;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static TorchSharp.torch.nn.functional;

namespace Quanto.Tests.Generators.Samples;

/// <summary>A pre-norm feed-forward block, used on its own, as a field of <see cref="Encoder"/> and in a
/// ModuleList in <see cref="BlockList"/>.</summary>
[Quantize(Weights = QInt4, Group = 32, Activations = QInt8)]
public partial class Block : Module<Tensor, Tensor>
{
    private readonly LayerNorm norm;
    private readonly Linear fc1;
    private readonly Linear fc2;

    public Block(long dim = 32) : base(nameof(Block))
    {
        norm = LayerNorm(dim);
        fc1 = Linear(dim, dim * 2);
        fc2 = Linear(dim * 2, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor h = norm.forward(x);
        h = fc2.forward(silu(fc1.forward(h)));
        return x + h;
    }
}
