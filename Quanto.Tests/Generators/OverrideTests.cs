using NUnit.Framework;
using Quanto.Nn;
using Quanto.Tests.Generators.Samples;
using static TorchSharp.torch;

namespace Quanto.Tests.Generators;

/// <summary>
/// The generated <c>Quantize(weights, activations, groupSize)</c> override. On each sample model it builds the same
/// modules as the eager <see cref="Quantizer.Quantize"/> on an identical float model (<see cref="MlpEager"/> and
/// friends), restricted to the layers the attributes quantize, and gives the same outputs bit for bit, dynamic
/// (after calibration when activations are quantized) and frozen, holding as many bytes. It reaches nested
/// [Quantize] models, and bad requests are refused before anything is built.
/// </summary>
[TestFixture]
public sealed class OverrideTests
{
    private static readonly (string Name, QType? Weights, QType? Activations, int? Group)[] Overrides =
    [
        ("w8", QType.QInt8, null, null),
        ("w4 g128", QType.QInt4, null, null),
        ("w2 g32", QType.QInt2, null, 32),
        ("w-fp8", QType.QFloat8E4M3Fn, null, null),
        ("w8a8", QType.QInt8, QType.QInt8, null),
        ("w8 a-fp8", QType.QInt8, QType.QFloat8E4M3Fn, null),
        ("a8", null, QType.QInt8, null),
    ];

    private static readonly string[] Models = ["Mlp", "Cnn", "ResidualStack", "Encoder", "BlockList"];

    private static IEnumerable<TestCaseData> Cases() =>
        from model in Models
        from o in Overrides
        select new TestCaseData(model, o.Name).SetName($"{model} Quantize({o.Name}) == eager");

    [TestCaseSource(nameof(Cases))]
    public void Override_equals_the_eager_path(string model, string overrideName)
    {
        var (_, weights, activations, group) = Overrides.Single(o => o.Name == overrideName);
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        manual_seed(20261124);
        (IGeneratedModel generated, nn.Module<Tensor, Tensor> eager, string[] floatLayers) = Pair(model);
        var annotated = (nn.Module)generated;
        eager.load_state_dict(annotated.state_dict());
        annotated.eval();
        // Keep the swapped-out float modules alive (see BehaviourTests): their replacements share their parameters.
        var swappedOut = eager.named_modules().Select(m => m.module).ToList();

        generated.Quantize(weights, activations, group);
        Quantizer.Quantize(eager, weights, activations, exclude: floatLayers, groupSize: group);
        eager.eval(); // after the swap, so that it reaches the quantized modules

        Assert.That(Describe(generated.QuantizedModules()),
            Is.EquivalentTo(Describe(Quantizer.QuantizedModules(eager))));
        Tensor input = model == "Cnn" ? randn(4, 3, 8, 8) : randn(4, 64);
        if (activations is not null)
        {
            Tensor samples = randn(input.shape);
            using (generated.Calibrate(0.9)) generated.ForwardQuantized(samples);
            using (new Calibration(0.9)) eager.forward(samples);
        }
        Assert.That(Values(generated.ForwardQuantized(input)), Is.EqualTo(Values(eager.forward(input))), "dynamic");

        generated.Freeze();
        Quantizer.Freeze(eager);
        Assert.That(Values(generated.ForwardQuantized(input)), Is.EqualTo(Values(eager.forward(input))), "frozen");
        Assert.That(Quantizer.ModelBytes(annotated, generated.QuantizedModules()),
            Is.EqualTo(Quantizer.ModelBytes(eager)),
            "bytes held: emptied float weights, shared biases counted once, twins' scales and quantized weights");
        GC.KeepAlive(swappedOut);
    }

    [Test]
    public void Quantization_aware_training_through_ForwardQuantized_equals_the_eager_path()
    {
        using IDisposable scope = NewDisposeScope();
        manual_seed(7);
        var generated = new Cnn();
        var eager = new CnnEager();
        eager.load_state_dict(generated.state_dict());
        var swappedOut = eager.named_modules().Select(m => m.module).ToList();
        generated.Quantize(QType.QInt4, groupSize: 32);
        Quantizer.Quantize(eager, QType.QInt4, groupSize: 32);
        Train(generated, generated.ForwardQuantized);
        Train(eager, eager.forward);

        using IDisposable noGrad = no_grad();
        generated.Freeze();
        Quantizer.Freeze(eager);
        Tensor input = randn(4, 3, 8, 8);
        Assert.That(Values(generated.ForwardQuantized(input)), Is.EqualTo(Values(eager.forward(input))));
        GC.KeepAlive(swappedOut);

        // A few Adam steps in training mode (fake-quantized weights, straight-through gradients), same batches.
        static void Train(nn.Module model, Func<Tensor, Tensor> forward)
        {
            using var generator = new Generator(11);
            using var optimizer = optim.Adam(model.parameters(), 1e-2);
            model.train();
            for (int step = 0; step < 3; step++)
            {
                Tensor x = randn([8, 3, 8, 8], generator: generator);
                Tensor y = randint(0, 10, [8], generator: generator);
                optimizer.zero_grad();
                nn.functional.cross_entropy(forward(x), y).backward();
                optimizer.step();
            }
            model.eval();
        }
    }

    [Test]
    public void Override_reaches_nested_models_and_keeps_the_attributes_layer_set()
    {
        using IDisposable scope = NewDisposeScope();
        var encoder = new Encoder();
        encoder.Quantize(QType.QInt2, groupSize: 32);
        // block.norm: Block's attribute quantizes its activations, this override none; it passes values through and
        // is not listed.
        Assert.That(Describe(encoder.QuantizedModules()), Is.EqualTo(new[]
        {
            "embed: qint2, none, 32", "block.fc1: qint2, none, 32", "block.fc2: qint2, none, 32",
            "head: qint2, none, 32",
        }));

        var list = new BlockList();
        list.Quantize(QType.QFloat8E5M2, QType.QInt8);
        Assert.That(Describe(list.QuantizedModules()), Does.Contain("blocks.1.norm: none, qint8, -")
            .And.Contain("blocks.0.fc2: qfloat8_e5m2, qint8, -").And.Contain("heads.1: qfloat8_e5m2, qint8, -"));

        // Mlp: head's own [Quantize(Weights = QInt8)] is replaced too; [NoQuantize] norm stays float.
        var mlp = new Mlp();
        mlp.Quantize(QType.QInt8, QType.QInt8);
        Assert.That(Describe(mlp.QuantizedModules()), Is.EqualTo(new[]
        {
            "fc1: qint8, qint8, -", "fc2: qint8, qint8, -", "head: qint8, qint8, -",
        }));
        Assert.That(Mlp.QuantizationMap, Does.Contain("\"fc1\": {\"weights\": \"qint4\""),
            "the const keeps the attributes'");
    }

    [Test]
    public void Override_without_arguments_keeps_the_attribute_overloads_behaviour()
    {
        using IDisposable scope = NewDisposeScope();
        var block = new Block();
        block.Quantize();
        Assert.That(Describe(block.QuantizedModules()), Is.EqualTo(new[]
        {
            "norm: none, qint8, -", "fc1: qint4, qint8, 32", "fc2: qint4, qint8, 32",
        }));
    }

    [Test]
    public void Bad_overrides_are_refused_before_anything_is_built()
    {
        using IDisposable scope = NewDisposeScope();
        var model = new Cnn();

        var neither = Assert.Throws<ArgumentException>(() => model.Quantize(weights: null))!;
        Assert.That(neither.Message, Does.Contain("needs a weights qtype, an activations qtype, or both"));
        var packed = Assert.Throws<ArgumentException>(() => model.Quantize(QType.QInt8, QType.QInt4))!;
        Assert.That(packed.ParamName, Is.EqualTo("activations"));
        Assert.That(packed.Message, Does.Contain("qint4 is for weights only"));
        var group = Assert.Throws<ArgumentOutOfRangeException>(() => model.Quantize(QType.QInt4, groupSize: 100))!;
        Assert.That(group.Message, Does.Contain("positive multiple of 8"));
        var undefined = Assert.Throws<ArgumentOutOfRangeException>(() => model.Quantize(default(QType)))!;
        Assert.That(undefined.ParamName, Is.EqualTo("weights"));
        Assert.That(undefined.Message, Does.Contain("Not a defined qtype"));

        Assert.That(model.IsQuantized, Is.False, "nothing was built");
        model.Quantize(QType.QInt8);
        Assert.Throws<InvalidOperationException>(() => model.Quantize(QType.QInt4), "already quantized");
    }

    /// <summary>"block.fc1: qint4, qint8, 32": path, weights, activations and requested group of each module.</summary>
    internal static string[] Describe(IEnumerable<QModule> modules) =>
        modules.Select(m => $"{m.Path}: {m.WeightQType?.QuantoName() ?? "none"}, " +
                            $"{m.ActivationQType?.QuantoName() ?? "none"}, {m.GroupSize?.ToString() ?? "-"}").ToArray();

    /// <summary>A sample model, its eager twin, and the eager exclusions that give the attributes' layer set (Mlp's
    /// norm is [NoQuantize]; a LayerNorm otherwise has a slot whatever its attribute).</summary>
    private static (IGeneratedModel, nn.Module<Tensor, Tensor>, string[]) Pair(string model) => model switch
    {
        "Mlp" => (new Mlp(), new MlpEager(), ["norm"]),
        "Cnn" => (new Cnn(), new CnnEager(), []),
        "ResidualStack" => (new ResidualStack(), new ResidualStackEager(), []), // norm: a slot whatever the attribute
        "Encoder" => (new Encoder(), new EncoderEager(), []),
        _ => (new BlockList(), new BlockListEager(), []),
    };

    private static float[] Values(Tensor tensor) => tensor.contiguous().data<float>().ToArray();
}
