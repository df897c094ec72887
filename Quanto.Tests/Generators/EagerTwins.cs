using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static TorchSharp.torch.nn.functional;

namespace Quanto.Tests.Generators;

// The sample models as the eager path needs them: the same fields, names and forward bodies, but layers held as
// Module<Tensor, Tensor> so Quantizer.Quantize can swap in QLinear / QConv2d / QLayerNorm.

internal sealed class MlpEager : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> fc1;
    private readonly Module<Tensor, Tensor> fc2;
    private readonly Module<Tensor, Tensor> head;
    private readonly Module<Tensor, Tensor> norm;

    public MlpEager() : base(nameof(MlpEager))
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

internal sealed class CnnEager : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> conv1;
    private readonly Module<Tensor, Tensor> conv2;
    private readonly Module<Tensor, Tensor> fc;

    public CnnEager() : base(nameof(CnnEager))
    {
        conv1 = Conv2d(3, 8, 3, padding: 1);
        conv2 = Conv2d(8, 16, 3, stride: 2);
        fc = Linear(16 * 3 * 3, 10);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor h = relu(conv1.forward(x));
        h = relu(conv2.call(h));
        return fc.forward(h.flatten(1));
    }
}

internal sealed class ResidualStackEager : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> proj;
    private readonly Module<Tensor, Tensor> up;
    private readonly Module<Tensor, Tensor> down;
    private readonly Module<Tensor, Tensor> norm;

    public ResidualStackEager() : base(nameof(ResidualStackEager))
    {
        proj = Linear(64, 32);
        up = Linear(32, 64);
        down = Linear(64, 32);
        norm = LayerNorm(32);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor h = proj.forward(x);
        for (int i = 0; i < 3; i++)
        {
            Tensor residual = h;
            h = norm.forward(h);
            h = gelu(up.forward(h));
            h = residual + down.forward(h) * 0.5;
        }
        return h;
    }
}

internal sealed class BlockEager : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> norm;
    private readonly Module<Tensor, Tensor> fc1;
    private readonly Module<Tensor, Tensor> fc2;

    public BlockEager(long dim = 32) : base(nameof(BlockEager))
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

internal sealed class EncoderEager : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> embed;
    private readonly BlockEager block;
    private readonly Module<Tensor, Tensor> head;

    public EncoderEager() : base(nameof(EncoderEager))
    {
        embed = Linear(64, 32);
        block = new BlockEager(32);
        head = Linear(32, 10);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => head.forward(block.forward(embed.forward(x)));
}

internal sealed class BlockListEager : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> embed;
    private readonly ModuleList<BlockEager> blocks;
    private readonly ModuleList<Module<Tensor, Tensor>> heads;

    public BlockListEager() : base(nameof(BlockListEager))
    {
        embed = Linear(64, 32);
        blocks = new ModuleList<BlockEager>(new BlockEager(32), new BlockEager(32));
        heads = new ModuleList<Module<Tensor, Tensor>>(Linear(32, 10), Linear(32, 10));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor h = embed.forward(x);
        foreach (BlockEager block in blocks) h = block.forward(h);
        Tensor logits = heads[0].forward(h);
        for (int i = 1; i < heads.Count; i++) logits = logits + heads[i].forward(h);
        return logits;
    }
}
