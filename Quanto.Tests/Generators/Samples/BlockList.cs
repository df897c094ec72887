using TorchSharp.Modules;
using static Quanto.QType;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Generators.Samples;

/// <summary>A ModuleList of annotated blocks run in a loop, and a ModuleList of linear heads indexed in forward.</summary>
[Quantize(Weights = QInt2, Group = 32)]
public partial class BlockList : Module<Tensor, Tensor>
{
    private readonly Linear embed;
    private readonly ModuleList<Block> blocks;
    private readonly ModuleList<Linear> heads;

    public BlockList(int depth = 2) : base(nameof(BlockList))
    {
        embed = Linear(64, 32);
        blocks = new ModuleList<Block>();
        for (int i = 0; i < depth; i++) blocks.Add(new Block(32));
        heads = new ModuleList<Linear>(Linear(32, 10), Linear(32, 10));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor h = embed.forward(x);
        foreach (Block block in blocks)
        {
            h = block.forward(h);
        }
        Tensor logits = heads[0].forward(h);
        for (int i = 1; i < heads.Count; i++) logits = logits + heads[i].forward(h);
        return logits;
    }
}
