using TorchSharp.Modules;
using static Quanto.QType;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static TorchSharp.torch.nn.functional;

namespace Quanto.Tests.Generators.Samples;

/// <summary>A residual block applied in a loop: the same layers run several times per forward.</summary>
[Quantize(Weights = QFloat8E4M3Fn)]
public partial class ResidualStack : Module<Tensor, Tensor>
{
    private readonly Linear proj;
    private readonly Linear up;
    private readonly Linear down;
    private readonly LayerNorm norm;
    private readonly int _repeats;

    public ResidualStack(int repeats = 3) : base(nameof(ResidualStack))
    {
        proj = Linear(64, 32);
        up = Linear(32, 64);
        down = Linear(64, 32);
        norm = LayerNorm(32);
        _repeats = repeats;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor h = proj.forward(x);
        for (int i = 0; i < _repeats; i++)
        {
            Tensor residual = h;
            h = norm.forward(h);
            h = gelu(up.forward(h));
            h = residual + down.forward(h) * 0.5;
        }
        return h;
    }
}
