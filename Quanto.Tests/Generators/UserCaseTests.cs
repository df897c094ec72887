using System.Reflection;
using NUnit.Framework;
using static TorchSharp.torch;

namespace Quanto.Tests.Generators;

/// <summary>
/// The ways issue #13 found a TorchSharp user breaking the generator, one test each: (1) a class written as
/// TorchSharp's examples write models, and one whose layers sit in a Sequential; (2) attention factored into a
/// private helper that forward calls. Each compiles in memory with the generator, and the generated
/// <c>ForwardQuantized</c> equals the eager <see cref="Quantizer.Quantize"/> of the same class (its fields are
/// <c>Module&lt;Tensor, Tensor&gt;</c>, so both paths take the one declaration), dynamic and frozen. Case (3),
/// <c>.to()</c> after Quantize, Freeze or LoadQuantized, is in <see cref="MoveTests"/>.
/// </summary>
[TestFixture]
public sealed class UserCaseTests
{
    private const string Source = ModelStyleCorpus.Usings + """
        namespace Cases;

        [Quanto.Quantize(Weights = QInt4, Group = 32)]
        public partial class TsMlp : Module<Tensor, Tensor>
        {
            private Module<Tensor, Tensor> fc1 = Linear(64, 128);
            private Module<Tensor, Tensor> relu = ReLU();
            private Module<Tensor, Tensor> fc2 = Linear(128, 10);
            public TsMlp() : base(nameof(TsMlp)) { RegisterComponents(); }
            public override Tensor forward(Tensor input)
            {
                using var x = fc1.forward(input);
                using var y = relu.forward(x);
                return fc2.forward(y);
            }
        }

        [Quanto.Quantize(Weights = QInt8)]
        public partial class SeqNet : Module<Tensor, Tensor>
        {
            private readonly Module<Tensor, Tensor> body = Sequential(("fc", Linear(64, 64)), ("act", ReLU()));
            private readonly Module<Tensor, Tensor> head = Linear(64, 10);
            public SeqNet() : base(nameof(SeqNet)) => RegisterComponents();
            public override Tensor forward(Tensor x) => head.forward(body.forward(x));
        }

        [Quanto.Quantize(Weights = QInt8, Activations = QInt8)]
        public partial class HelperAttention : Module<Tensor, Tensor>
        {
            private readonly Module<Tensor, Tensor> q = Linear(64, 64), k = Linear(64, 64), v = Linear(64, 64);
            private readonly Module<Tensor, Tensor> o = Linear(64, 64);
            public HelperAttention() : base(nameof(HelperAttention)) => RegisterComponents();
            public override Tensor forward(Tensor x) => x + Attend(x);
            private Tensor Attend(Tensor x)
            {
                Tensor query = Heads(q.forward(x));
                Tensor key = Heads(k.forward(x));
                Tensor value = Heads(v.forward(x));
                Tensor weights = softmax(matmul(query, key.transpose(-2, -1)) / 4.0, -1);
                return Merge(matmul(weights, value), x);
            }
            private Tensor Merge(Tensor heads, Tensor like) => o.forward(heads.transpose(1, 2).reshape(like.shape));
            private static Tensor Heads(Tensor t) => t.view(t.shape[0], t.shape[1], 4, 16).transpose(1, 2);
        }
        """;

    private static readonly Lazy<(Assembly Assembly, string[] Diagnostics)> Compiled = new(() =>
    {
        var (_, output, diagnostics) = GeneratorHarness.Run(GeneratorHarness.Compile([new("Cases", Source)], "UserCases"));
        return (GeneratorHarness.Load(output), diagnostics.Select(d => $"{d.Id}: {d.GetMessage()}").ToArray());
    });

    [Test]
    public void Case1_a_TorchSharp_examples_style_class_compiles_and_equals_the_eager_path() =>
        AssertGeneratedEqualsEager("TsMlp", [4, 64], QType.QInt4, null, 32);

    [Test]
    public void Case1_a_Sequential_field_gets_a_diagnostic_and_its_layers_run_float()
    {
        Assert.That(Compiled.Value.Diagnostics, Has.One.StartsWith("QNT013: 'body' is a Sequential"));
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        nn.Module model = New("SeqNet");
        dynamic generated = model;
        generated.Quantize();
        Assert.That(((IEnumerable<Quanto.Nn.QModule>)generated.QuantizedModules()).Select(m => m.Path),
            Is.EqualTo(new[] { "head" }), "only the layer outside the Sequential is quantized");
        Tensor x = randn(2, 64);
        Assert.That(((Tensor)generated.ForwardQuantized(x)).shape, Is.EqualTo(new long[] { 2, 10 }));
    }

    [Test]
    public void Case2_attention_in_private_helpers_is_quantized_and_runs_after_Freeze() =>
        AssertGeneratedEqualsEager("HelperAttention", [2, 5, 64], QType.QInt8, QType.QInt8, null);

    [Test]
    public void No_other_diagnostic_than_the_Sequential_one() =>
        Assert.That(Compiled.Value.Diagnostics.Where(d => !d.StartsWith("QNT015", StringComparison.Ordinal)),
            Has.Exactly(1).Items);

    /// <summary>Generated and eager paths on two instances of the same class with the same weights: the same
    /// quantized modules, and the same outputs bit for bit, dynamic (after calibration) and frozen.</summary>
    private static void AssertGeneratedEqualsEager(string name, long[] shape, QType weights, QType? activations,
        int? group)
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        manual_seed(13);
        nn.Module model = New(name), eager = New(name);
        eager.load_state_dict(model.state_dict());
        model.eval();
        dynamic generated = model;
        generated.Quantize();
        var swappedOut = eager.named_modules().Select(m => m.module).ToList();
        Quantizer.Quantize(eager, weights, activations, groupSize: group);
        eager.eval();
        Assert.That(((IEnumerable<Quanto.Nn.QModule>)generated.QuantizedModules()).Select(m => m.Describe()),
            Is.EqualTo(Quantizer.QuantizedModules(eager).Select(m => m.Describe())));

        Tensor x = randn(shape);
        if (activations is not null)
        {
            Tensor samples = randn(shape);
            using ((IDisposable)generated.Calibrate()) generated.ForwardQuantized(samples);
            using (new Calibration(eager)) ((nn.Module<Tensor, Tensor>)eager).forward(samples);
        }
        Assert.That(Values((Tensor)generated.ForwardQuantized(x)),
            Is.EqualTo(Values(((nn.Module<Tensor, Tensor>)eager).forward(x))), "dynamic");
        generated.Freeze();
        Quantizer.Freeze(eager);
        Assert.That(Values((Tensor)generated.ForwardQuantized(x)),
            Is.EqualTo(Values(((nn.Module<Tensor, Tensor>)eager).forward(x))), "frozen");
        GC.KeepAlive(swappedOut);
    }

    private static nn.Module New(string name) =>
        (nn.Module)Activator.CreateInstance(Compiled.Value.Assembly.GetType($"Cases.{name}", true)!)!;

    private static float[] Values(Tensor t) => t.contiguous().data<float>().ToArray();
}
