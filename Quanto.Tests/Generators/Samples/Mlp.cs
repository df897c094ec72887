using TorchSharp.Modules;
using static Quanto.QType;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static TorchSharp.torch.nn.functional;

namespace Quanto.Tests.Generators.Samples;

/// <summary>DESIGN.md's classifier: an expression-bodied forward, a per-layer override and a float LayerNorm.</summary>
[Quantize(Weights = QInt4, Group = 32)]
public partial class Mlp : Module<Tensor, Tensor>
{
    private readonly Linear fc1;
    private readonly Linear fc2;
    [Quantize(Weights = QInt8)]
    private readonly Linear head;
    [NoQuantize]
    private readonly LayerNorm norm;

    public Mlp() : base(nameof(Mlp))
    {
        fc1 = Linear(64, 128);
        fc2 = Linear(128, 64);
        norm = LayerNorm(64);
        head = Linear(64, 10);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) =>
        head.forward(norm.forward(relu(fc2.forward(relu(fc1.forward(x))))));
}
