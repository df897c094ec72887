using System.Reflection;
using Microsoft.CodeAnalysis;
using NUnit.Framework;
using Quanto.Generated;
using Quanto.Nn;
using static TorchSharp.torch;

namespace Quanto.Tests.Generators;

/// <summary>
/// What Quanto.Models' classes need from the generator (issue 15.1), each on the smallest class that shows it,
/// compiled in memory with the generator and compared with the eager <see cref="Quantizer.Quantize"/> of the same
/// class bit for bit: (1) a model with its own optimum-quanto-style <c>Quantize</c> keeps it (no generated
/// overload beside it, so no CS0121), reaches the lifecycle through <see cref="IQuantizedModel"/>, and its forward
/// sends callers to ForwardQuantized once quantized; (2) weight tying through a type test is not a float use
/// (QNT007), while handing the layer out still is; (3) a LayerNorm always has a slot, so a weights-only attribute
/// with an activation override equals the eager w8a8 swap, and a class of Embeddings plus a LayerNorm is a model.
/// </summary>
[TestFixture]
public sealed class ModelApiTests
{
    private const string Source = ModelStyleCorpus.Usings + """
        using System.Collections.Generic;
        using Quanto;
        using Quanto.Generated;

        namespace Api;

        [Quanto.Quantize]
        public partial class OwnApi : Module<Tensor, Tensor>
        {
            private readonly Module<Tensor, Tensor> fc1 = Linear(32, 64);
            private readonly Module<Tensor, Tensor> fc2 = Linear(64, 16);
            public OwnApi() : base(nameof(OwnApi)) => RegisterComponents();
            public override Tensor forward(Tensor x)
            {
                if (IsQuantized) return ForwardQuantized(x);
                return fc2.forward(relu(fc1.forward(x)));
            }
            public QuantizationReport Quantize(Quanto.QType? weights = QInt8, Quanto.QType? activations = null,
                IEnumerable<string>? exclude = null)
            {
                ModelQuantization lifecycle = ((IQuantizedModel)this).Quantization;
                lifecycle.Quantize(weights, activations, null, null, null, exclude);
                return lifecycle.Report();
            }
        }

        public static class Caller
        {
            public static QuantizationReport Run(OwnApi net) => net.Quantize(QInt4);
        }

        [Quanto.Quantize]
        public partial class Tied : Module<Tensor, Tensor>
        {
            private readonly Module<Tensor, Tensor> embed = Embedding(16, 32);
            private readonly Module<Tensor, Tensor> head = Linear(32, 16, hasBias: false);
            public Tied() : base(nameof(Tied))
            {
                RegisterComponents();
                Tie();
            }
            public override Tensor forward(Tensor ids) => head.forward(embed.forward(ids));
            public bool HeadIsFloat => head is Linear;
            private void Tie()
            {
                if (head is Linear l && embed is Embedding { weight: Parameter shared }) l.weight = shared;
            }
        }

        [Quanto.Quantize]
        public partial class HandsOut : Module<Tensor, Tensor>
        {
            private readonly Module<Tensor, Tensor> head = Linear(8, 8);
            public HandsOut() : base(nameof(HandsOut)) => RegisterComponents();
            public override Tensor forward(Tensor x) => head.forward(x);
            public Linear? FloatHead => head as Linear;
            public Tensor Twice(Tensor x) => head.forward(head.forward(x));
        }

        [Quanto.Quantize(Weights = QInt8)]
        public partial class Normed : Module<Tensor, Tensor>
        {
            private readonly Module<Tensor, Tensor> fc = Linear(32, 32);
            private readonly Module<Tensor, Tensor> norm = LayerNorm(32);
            private readonly Module<Tensor, Tensor> out_proj = Linear(32, 8);
            public Normed() : base(nameof(Normed)) => RegisterComponents();
            public override Tensor forward(Tensor x) => out_proj.forward(norm.forward(fc.forward(x)));
        }

        [Quanto.Quantize]
        public partial class Embeddings : Module<Tensor, Tensor>
        {
            private readonly Module<Tensor, Tensor> words = Embedding(16, 32);
            private readonly Module<Tensor, Tensor> norm = LayerNorm(32);
            public Embeddings() : base(nameof(Embeddings)) => RegisterComponents();
            public override Tensor forward(Tensor ids) => norm.forward(words.forward(ids));
        }
        """;

    private static readonly Lazy<(Compilation Output, Diagnostic[] Diagnostics)> Generated = new(() =>
    {
        var input = GeneratorHarness.Compile([new("Api", Source)], "ModelApi", GeneratorHarness.WithInterceptors);
        var (_, output, diagnostics) = GeneratorHarness.Run(input, GeneratorHarness.Driver(GeneratorHarness.WithInterceptors));
        return (output, diagnostics.ToArray());
    });

    private static readonly Lazy<Assembly> Compiled = new(() => GeneratorHarness.Load(Generated.Value.Output));

    [Test]
    public void Own_Quantize_is_kept_and_calls_that_pass_only_weights_compile()
    {
        Assert.That(GeneratorHarness.Problems(Generated.Value.Output).Select(d => d.ToString()), Is.Empty);
        string generated = GeneratedText("Api.OwnApi.Quantized");
        Assert.That(generated, Does.Not.Contain("public void Quantize("), "no generated Quantize beside the class's own");
        Assert.That(generated, Does.Contain("public void Freeze()").And.Contain("public bool IsQuantized"));
        Assert.That(Generated.Value.Diagnostics.Where(d => d.Id == "QNT018").Select(d => d.GetMessage()),
            Is.EqualTo(new[]
            {
                "Class 'OwnApi' declares Quantize itself, so the generator emits no member of that name; the " +
                "class's own members reach the generated lifecycle through " +
                "((Quanto.Generated.IQuantizedModel)this).Quantization",
            }));
        Assert.That(generated, Does.Not.Contain("if (IsQuantized)"), "the dispatch is left out of ForwardQuantized");
    }

    [TestCase(QType.QInt8, null)]
    [TestCase(QType.QInt4, null)]
    [TestCase(QType.QInt8, QType.QInt8)]
    public void Own_Quantize_with_exclude_then_forward_equals_the_eager_path(QType weights, QType? activations)
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        (nn.Module model, nn.Module eager) = Pair("OwnApi");
        dynamic generated = model;
        QuantizationReport report = generated.Quantize(weights, activations, new[] { "fc2" });
        QuantizationReport expected = Quantizer.Quantize(eager, weights, activations, exclude: ["fc2"]);
        Assert.That(report.Quantized, Is.EqualTo(expected.Quantized));
        Assert.That(Paths(model), Is.EqualTo(new[] { "fc1" }));
        AssertForwardsEqual(model, eager, [4, 32], activations is not null, () => generated.Freeze());
    }

    [Test]
    public void The_own_Quantize_is_what_a_caller_passing_only_weights_gets()
    {
        using IDisposable scope = NewDisposeScope();
        nn.Module model = New("OwnApi");
        var report = (QuantizationReport)Compiled.Value.GetType("Api.Caller", true)!.GetMethod("Run")!
            .Invoke(null, [model])!;
        Assert.That(report.Quantized.Select(q => (q.Path, q.Weights)),
            Is.EqualTo(new[] { ("fc1", (QType?)QType.QInt4), ("fc2", QType.QInt4) }));
    }

    [Test]
    public void Weight_tying_through_a_type_test_is_not_a_float_use_but_handing_the_layer_out_is()
    {
        string[] floatUses = Generated.Value.Diagnostics.Where(d => d.Id == "QNT007")
            .Select(d => d.GetMessage()[..d.GetMessage().IndexOf(" in a way", StringComparison.Ordinal)])
            .ToArray();
        Assert.That(floatUses, Is.EquivalentTo(new[]
        {
            "'head' is used in 'FloatHead' (ForwardQuantized does not run it)",
            "'head' is used in 'Twice' (ForwardQuantized does not run it)",
            "'head' is used in 'Twice' (ForwardQuantized does not run it)",
        }), "Tied's Tie and HeadIsFloat are not float uses");
    }

    [TestCase(QType.QInt8)]
    [TestCase(QType.QInt4)]
    public void A_tied_head_quantized_by_the_generated_path_equals_the_eager_one(QType weights)
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        (nn.Module model, nn.Module eager) = Pair("Tied");
        dynamic generated = model;
        generated.Quantize(weights);
        Quantizer.Quantize(eager, weights);
        eager.eval();
        Assert.That(Paths(model), Is.EqualTo(new[] { "head" }));
        Tensor ids = randint(16, [3, 5]);
        Assert.That(Values((Tensor)generated.ForwardQuantized(ids)),
            Is.EqualTo(Values(((nn.Module<Tensor, Tensor>)eager).forward(ids))), "dynamic");
        generated.Freeze();
        Quantizer.Freeze(eager);
        Assert.That(Values((Tensor)generated.ForwardQuantized(ids)),
            Is.EqualTo(Values(((nn.Module<Tensor, Tensor>)eager).forward(ids))), "frozen");
        Assert.That(model.state_dict()["embed.weight"].NumberOfElements, Is.EqualTo(16 * 32),
            "releasing the head's float weight leaves the embedding it shares");
    }

    [Test]
    public void A_LayerNorm_has_a_slot_whatever_the_attribute_and_no_twin_without_activations()
    {
        Assert.That(GeneratedText("Api.Normed.Quantized"), Does.Contain("_normQuantized = new(\"norm\");"));
        Assert.That(GeneratedText("Api.Normed.Quantized"), Does.Not.Contain("\\\"norm\\\""),
            "a slot the attributes leave float is not in QuantizationMap");
        Assert.That(Generated.Value.Diagnostics.Where(d => d.Id == "QNT010"), Is.Empty,
            "Embeddings + LayerNorm is a model");
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        (nn.Module model, nn.Module eager) = Pair("Normed");
        ((dynamic)model).Quantize();
        Quantizer.Quantize(eager, QType.QInt8);
        Assert.That(Paths(model), Is.EqualTo(new[] { "fc", "out_proj" }));
        AssertForwardsEqual(model, eager, [4, 32], false, () => ((dynamic)model).Freeze());
    }

    [TestCase("Normed", 4L, 32L)]
    [TestCase("Embeddings", 4L, 0L)]
    public void A_weights_only_attribute_with_an_activation_override_equals_the_eager_w8a8_swap(string name,
        long batch, long features)
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        (nn.Module model, nn.Module eager) = Pair(name);
        dynamic generated = model;
        generated.Quantize(QType.QInt8, QType.QInt8);
        Quantizer.Quantize(eager, QType.QInt8, QType.QInt8);
        Assert.That(((IEnumerable<QModule>)generated.QuantizedModules()).Select(m => m.Describe()),
            Is.EqualTo(Quantizer.QuantizedModules(eager).Select(m => m.Describe())));
        Assert.That(Paths(model), Does.Contain("norm"));
        AssertForwardsEqual(model, eager, features == 0 ? [batch, 6] : [batch, features], true,
            () => generated.Freeze(), features == 0);
    }

    private static string GeneratedText(string hint) => string.Concat(Generated.Value.Output.SyntaxTrees
        .Where(t => t.FilePath.Contains(hint, StringComparison.Ordinal)).Select(t => t.ToString()));

    private static string[] Paths(nn.Module model) =>
        ((IQuantizedModel)model).Quantization.QuantizedModules().Select(m => m.Path).ToArray();

    /// <summary>Two instances with the same weights, the generated one in eval mode (the eager one goes after its
    /// swap, so that eval reaches its quantized modules).</summary>
    private static (nn.Module Model, nn.Module Eager) Pair(string name)
    {
        manual_seed(15);
        nn.Module model = New(name), eager = New(name);
        eager.load_state_dict(model.state_dict());
        model.eval();
        return (model, eager);
    }

    /// <summary>forward (the generated model's dispatches once quantized, else ForwardQuantized is called) equals
    /// the eager model's, after calibrating both on the same samples, dynamic and frozen.</summary>
    private static void AssertForwardsEqual(nn.Module model, nn.Module eager, long[] shape, bool calibrate,
        Action freeze, bool ids = false)
    {
        eager.eval();
        Tensor Input() => ids ? randint(16, shape) : randn(shape);
        var generated = (nn.Module<Tensor, Tensor>)model;
        var reference = (nn.Module<Tensor, Tensor>)eager;
        Func<Tensor, Tensor> run = model.GetType().Name == "OwnApi"
            ? generated.forward
            : x => (Tensor)((dynamic)model).ForwardQuantized(x);
        if (calibrate)
        {
            Tensor samples = Input();
            using (new Calibration(model)) run(samples);
            using (new Calibration(eager)) reference.forward(samples);
        }
        Tensor input = Input();
        Assert.That(Values(run(input)), Is.EqualTo(Values(reference.forward(input))), "dynamic");
        freeze();
        Quantizer.Freeze(eager);
        Assert.That(Values(run(input)), Is.EqualTo(Values(reference.forward(input))), "frozen");
    }

    private static nn.Module New(string name) =>
        (nn.Module)Activator.CreateInstance(Compiled.Value.GetType($"Api.{name}", true)!)!;

    private static float[] Values(Tensor t) => t.contiguous().data<float>().ToArray();
}
