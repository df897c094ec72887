namespace Quanto.Tests.Generators;

/// <summary>
/// Model classes written the ways TorchSharp users write them, for <see cref="ModelStyleCorpusTests"/>: each with the
/// generator diagnostics it must get (none, warnings that say what stays float, or the error that stops generation).
/// </summary>
internal static class ModelStyleCorpus
{
    public const string Usings = """
        using System;
        using TorchSharp.Modules;
        using static Quanto.QType;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;
        using static TorchSharp.torch.nn.functional;

        """;

    /// <summary>(name, expected diagnostic ids in order, class source without usings).</summary>
    public static IEnumerable<(string Name, string[] Diagnostics, string Source)> Entries()
    {
        yield return ("TorchSharp examples style", ["QNT015", "QNT015"], """
            namespace Corpus.Examples;
            [Quanto.Quantize(Weights = QInt8)]
            public partial class TsMlp : Module<Tensor, Tensor>
            {
                private Module<Tensor, Tensor> fc1 = Linear(64, 128);
                private Module<Tensor, Tensor> relu = ReLU();
                private Module<Tensor, Tensor> drop = Dropout(0.1);
                private Module<Tensor, Tensor> fc2 = Linear(128, 10);
                public TsMlp() : base(nameof(TsMlp)) { RegisterComponents(); }
                public override Tensor forward(Tensor input)
                {
                    using var x = fc1.forward(input);
                    using var y = relu.forward(x);
                    return fc2.forward(drop.forward(y));
                }
            }
            """);
        yield return ("layers assigned in the constructor", [], """
            namespace Corpus.Ctor;
            [Quanto.Quantize(Weights = QInt4, Group = 32)]
            public partial class Net : Module<Tensor, Tensor>
            {
                private readonly Module<Tensor, Tensor> fc1;
                private readonly Linear fc2;
                public Net() : base("Net")
                {
                    fc1 = Linear(64, 64);
                    this.fc2 = Linear(64, 8);
                    RegisterComponents();
                }
                public override Tensor forward(Tensor x) => this.fc2.call(gelu(fc1.forward(x)));
            }
            """);
        yield return ("a Sequential beside a layer", ["QNT013"], """
            namespace Corpus.Seq;
            [Quanto.Quantize(Weights = QInt8)]
            public partial class Net : Module<Tensor, Tensor>
            {
                private readonly Module<Tensor, Tensor> body = Sequential(("fc", Linear(16, 16)), ("act", ReLU()));
                private readonly Linear head = Linear(16, 4);
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x) => head.forward(body.forward(x));
            }
            """);
        yield return ("only a Sequential", ["QNT013", "QNT010"], """
            namespace Corpus.SeqOnly;
            [Quanto.Quantize(Weights = QInt8)]
            public partial class Net : Module<Tensor, Tensor>
            {
                private readonly Sequential body = Sequential(("fc", Linear(16, 16)), ("act", ReLU()));
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x) => body.forward(x);
            }
            """);
        yield return ("attention in helpers", [], """
            namespace Corpus.Helpers;
            [Quanto.Quantize(Weights = QInt8)]
            public partial class Attention : Module<Tensor, Tensor>
            {
                private const int Heads = 2;
                private readonly Linear q = Linear(16, 16), k = Linear(16, 16), v = Linear(16, 16), o = Linear(16, 16);
                public Attention() : base("Attention") => RegisterComponents();
                public override Tensor forward(Tensor x) => x + Project(SelfAttention(x));
                private Tensor SelfAttention(Tensor x)
                {
                    Tensor query = Split(q.forward(x)), key = Split(k.forward(x)), value = Split(v.forward(x));
                    Tensor scores = matmul(query, key.transpose(-2, -1)) / Math.Sqrt(query.shape[^1]);
                    return matmul(softmax(scores, -1), value).transpose(1, 2).reshape(x.shape);
                }
                private Tensor Project(Tensor h) => o.forward(h);
                private static Tensor Split(Tensor t) => t.view(t.shape[0], t.shape[1], Heads, -1).transpose(1, 2);
            }
            """);
        yield return ("generic class, block namespace, usings inside", [], """
            namespace Corpus.Generic
            {
                using TorchSharp;
                [Quanto.Quantize(Weights = QInt8)]
                public partial class Head<T> : Module<Tensor, Tensor>
                    where T : class
                {
                    private readonly Linear fc = Linear(8, 2);
                    public Head() : base("Head") => RegisterComponents();
                    public override Tensor forward(Tensor x) => fc.forward(x);
                }
            }
            """);
        yield return ("forward overloads with a mask", [], """
            namespace Corpus.Overloads;
            [Quanto.Quantize(Weights = QInt8)]
            public partial class Block : Module<Tensor, Tensor>
            {
                private readonly Linear fc = Linear(8, 8);
                public Block() : base("Block") => RegisterComponents();
                public override Tensor forward(Tensor x) => forward(x, null);
                public Tensor forward(Tensor x, Tensor? mask)
                {
                    Tensor h = fc.forward(x);
                    if (mask is not null) h = h.masked_fill(mask, 0);
                    return h;
                }
            }
            """);
        yield return ("two inputs, tuple output", [], """
            namespace Corpus.Tuple;
            [Quanto.Quantize(Weights = QInt8)]
            public partial class Pair : Module<Tensor, Tensor, (Tensor, Tensor)>
            {
                private readonly Linear a = Linear(8, 8), b = Linear(8, 8);
                public Pair() : base("Pair") => RegisterComponents();
                public override (Tensor, Tensor) forward(Tensor x, Tensor y)
                {
                    var (left, right) = (a.forward(x), b.forward(y));
                    left.add_(right);
                    return (left, right);
                }
            }
            """);
        yield return ("a layer injected through the constructor", ["QNT012"], """
            namespace Corpus.Injected;
            [Quanto.Quantize(Weights = QInt8)]
            public partial class Net : Module<Tensor, Tensor>
            {
                private readonly Module<Tensor, Tensor> inner;
                private readonly Linear head = Linear(8, 2);
                public Net(Module<Tensor, Tensor> inner) : base("Net")
                {
                    this.inner = inner;
                    RegisterComponents();
                }
                public override Tensor forward(Tensor x) => head.forward(inner.forward(x));
            }
            """);
        yield return ("a module class that is not annotated", ["QNT014"], """
            namespace Corpus.Plain;
            public class Mlp : Module<Tensor, Tensor>
            {
                private readonly Linear fc = Linear(8, 8);
                public Mlp() : base("Mlp") => RegisterComponents();
                public override Tensor forward(Tensor x) => fc.forward(x);
            }
            [Quanto.Quantize(Weights = QInt8)]
            public partial class Net : Module<Tensor, Tensor>
            {
                private readonly Mlp mlp = new();
                private readonly Linear head = Linear(8, 2);
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x) => head.forward(mlp.forward(x));
            }
            """);
        yield return ("layers used outside forward", ["QNT007", "QNT007"], """
            namespace Corpus.Outside;
            [Quanto.Quantize(Weights = QInt8)]
            public partial class Net : Module<Tensor, Tensor>
            {
                private readonly Linear fc = Linear(8, 8);
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x) => fc.forward(x);
                public Tensor Embed(Tensor x) => fc.forward(x);
                public long Width => fc.out_features;
            }
            """);
        yield return ("local functions, lambdas, loops and branches", [], """
            namespace Corpus.Control;
            [Quanto.Quantize(Weights = QInt8)]
            public partial class Net : Module<Tensor, Tensor>
            {
                private readonly ModuleList<Linear> layers = new(Linear(8, 8), Linear(8, 8));
                private readonly Linear gate = Linear(8, 8);
                private readonly bool _gated = true;
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x)
                {
                    Tensor Step(Tensor h, int i) => layers[i].forward(h);
                    Func<Tensor, Tensor> act = t => gate.forward(t).sigmoid();
                    for (int i = 0; i < layers.Count; i++)
                        x = _gated ? Step(x, i) * act(x) : Step(x, i);
                    return x;
                }
            }
            """);
        yield return ("nested models in a list and a user Dispose", [], """
            namespace Corpus.Nested;
            [Quanto.Quantize(Weights = QInt4, Group = 32)]
            public partial class Layer : Module<Tensor, Tensor>
            {
                private readonly Linear fc = Linear(32, 32);
                public Layer() : base("Layer") => RegisterComponents();
                public override Tensor forward(Tensor x) => x + fc.forward(x);
            }
            [Quanto.Quantize(Weights = QInt8)]
            public partial class Stack : Module<Tensor, Tensor>
            {
                private readonly ModuleList<Layer> layers = new(new Layer(), new Layer());
                [Quanto.NoQuantize] private readonly LayerNorm norm = LayerNorm(32);
                public Stack() : base("Stack") => RegisterComponents();
                public override Tensor forward(Tensor x)
                {
                    foreach (Layer layer in layers) x = layer.forward(x);
                    return norm.forward(x);
                }
                protected override void Dispose(bool disposing)
                {
                    if (disposing) DisposeQuantized();
                    base.Dispose(disposing);
                }
            }
            """);
        yield return ("no layer at all", ["QNT015", "QNT010"], """
            namespace Corpus.Empty;
            [Quanto.Quantize(Weights = QInt8)]
            public partial class Net : Module<Tensor, Tensor>
            {
                private readonly Module<Tensor, Tensor> act = ReLU();
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x) => act.forward(x);
            }
            """);
        yield return ("a module without a quantized counterpart", ["QNT011"], """
            namespace Corpus.Unsupported;
            [Quanto.Quantize(Weights = QInt8)]
            public partial class Net : Module<Tensor, Tensor>
            {
                private readonly BatchNorm1d norm = BatchNorm1d(8);
                private readonly Linear fc = Linear(8, 8);
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x) => fc.forward(norm.forward(x));
            }
            """);
    }
}
