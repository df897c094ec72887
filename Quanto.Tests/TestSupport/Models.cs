using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.TestSupport;

/// <summary>Small models shaped like the issue's: fields typed Module&lt;Tensor, Tensor&gt; as in TorchSharp's
/// examples, so the eager quantizer can swap them.</summary>
internal sealed class Mlp : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> fc1;
    private readonly Module<Tensor, Tensor> fc2;

    public Mlp(long inputs = 784, long hidden = 256, long outputs = 10) : base(nameof(Mlp))
    {
        fc1 = Linear(inputs, hidden);
        fc2 = Linear(hidden, outputs);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => fc2.forward(functional.relu(fc1.forward(x)));
}

/// <summary>conv1 (3x3) -> relu -> conv2 (3x3, padding 1) -> relu -> 2x2 max-pool -> fc to 10 classes, on one-channel
/// square inputs; pooledSide is the side after pooling ((input side - 2) / 2).</summary>
internal sealed class Cnn : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> conv1;
    private readonly Module<Tensor, Tensor> conv2;
    private readonly Module<Tensor, Tensor> fc;

    public Cnn(long channels1 = 8, long channels2 = 16, long pooledSide = 13) : base(nameof(Cnn))
    {
        conv1 = Conv2d(1, channels1, 3);
        conv2 = Conv2d(channels1, channels2, 3, padding: 1);
        fc = Linear(channels2 * pooledSide * pooledSide, 10);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor h = functional.relu(conv1.forward(x));
        h = functional.max_pool2d(functional.relu(conv2.forward(h)), 2);
        return fc.forward(h.flatten(1));
    }
}

/// <summary>Single-head self-attention: q/k/v/o projections around a softmax.</summary>
internal sealed class Attention : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> q;
    private readonly Module<Tensor, Tensor> k;
    private readonly Module<Tensor, Tensor> v;
    private readonly Module<Tensor, Tensor> o;
    private readonly double _scale;

    public Attention(long dim = 64) : base(nameof(Attention))
    {
        q = Linear(dim, dim);
        k = Linear(dim, dim);
        v = Linear(dim, dim);
        o = Linear(dim, dim);
        _scale = 1 / Math.Sqrt(dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor scores = q.forward(x).matmul(k.forward(x).transpose(1, 2)).mul(_scale);
        return o.forward(functional.softmax(scores, -1).matmul(v.forward(x)));
    }
}

/// <summary>Fields declared with TorchSharp's sealed layer types: the eager quantizer must refuse them clearly.</summary>
internal sealed class SealedFields : Module<Tensor, Tensor>
{
    private readonly TorchSharp.Modules.Linear fc;

    public SealedFields() : base(nameof(SealedFields))
    {
        fc = Linear(8, 4);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => fc.forward(x);
}

internal static class Seeded
{
    /// <summary>Builds a model under a fixed seed so its initial weights are reproducible.</summary>
    public static T Create<T>(Func<T> factory, long seed = 0)
    {
        random.manual_seed(seed);
        return factory();
    }

    /// <summary>Uniform [-1, 1] inputs, as optimum-quanto's random_tensor.</summary>
    public static Tensor Uniform(long[] shape, long seed = 1)
    {
        using var generator = new Generator((ulong)seed);
        return rand(shape, generator: generator).mul_(2).sub_(1);
    }
}

/// <summary>optimum-quanto's assert_similar: |1 - cos| &lt;= atol + rtol, rtol = 1e-5 for fp32.</summary>
internal static class Similarity
{
    public static void AssertSimilar(Tensor expected, Tensor actual, double atol, string what = "")
    {
        double error = Reference.CosineError(expected, actual);
        NUnit.Framework.TestContext.Out.WriteLine($"{what}: |1 - cos| = {error:E2} (bound {atol + 1e-5:E2})");
        NUnit.Framework.Assert.That(error, NUnit.Framework.Is.LessThanOrEqualTo(atol + 1e-5), what);
    }
}

/// <summary>blocks.N.attn / blocks.N.mlp.fc1 / blocks.N.mlp.fc2 / lm_head: a transformer-shaped module tree.</summary>
internal sealed class Stack : Module<Tensor, Tensor>
{
    private readonly TorchSharp.Modules.ModuleList<Block> blocks;
    private readonly Module<Tensor, Tensor> lm_head;

    public Stack(int depth = 2, long dim = 4) : base(nameof(Stack))
    {
        blocks = new TorchSharp.Modules.ModuleList<Block>(Enumerable.Range(0, depth).Select(_ => new Block(dim)).ToArray());
        lm_head = Linear(dim, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        foreach (Block block in blocks) x = block.forward(x);
        return lm_head.forward(x);
    }
}

internal sealed class Block : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> attn;
    private readonly Module<Tensor, Tensor> mlp;

    public Block(long dim) : base(nameof(Block))
    {
        attn = Linear(dim, dim);
        mlp = Sequential(("fc1", Linear(dim, dim)), ("act", ReLU()), ("fc2", Linear(dim, dim)));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => mlp.forward(attn.forward(x));
}

/// <summary>A ModuleList of plain layers, iterated in forward: entries must be swapped inside the list.</summary>
internal sealed class Layers : Module<Tensor, Tensor>
{
    private readonly TorchSharp.Modules.ModuleList<Module<Tensor, Tensor>> layers;

    public Layers() : base(nameof(Layers))
    {
        layers = new TorchSharp.Modules.ModuleList<Module<Tensor, Tensor>>(Linear(4, 4), Linear(4, 4));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        foreach (Module<Tensor, Tensor> layer in layers) x = layer.forward(x);
        return x;
    }
}

/// <summary>optimum-quanto's test MLP: input -> relu -> mid -> relu -> output -> softmax.</summary>
internal sealed class SoftmaxMlp : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> input_layer;
    private readonly Module<Tensor, Tensor> mid_layer;
    private readonly Module<Tensor, Tensor> output_layer;

    public SoftmaxMlp(long inputs = 32, long outputs = 10, long hidden = 128) : base(nameof(SoftmaxMlp))
    {
        input_layer = Linear(inputs, hidden);
        mid_layer = Linear(hidden, hidden);
        output_layer = Linear(hidden, outputs);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor h = functional.relu(input_layer.forward(x));
        h = functional.relu(mid_layer.forward(h));
        return functional.softmax(output_layer.forward(h), -1);
    }
}
