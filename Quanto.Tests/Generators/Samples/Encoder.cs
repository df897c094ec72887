using TorchSharp.Modules;
using static Quanto.QType;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Generators.Samples;

/// <summary>A nested annotated submodule: <see cref="Block"/>'s generated ForwardQuantized is called.</summary>
[Quantize(Weights = QInt8)]
public partial class Encoder : Module<Tensor, Tensor>
{
    private readonly Linear embed;
    private readonly Block block;
    private readonly Linear head;

    public Encoder() : base(nameof(Encoder))
    {
        embed = Linear(64, 32);
        block = new Block(32);
        head = Linear(32, 10);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => head.forward(block.forward(embed.forward(x)));
}
