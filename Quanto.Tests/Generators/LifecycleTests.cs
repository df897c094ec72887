using NUnit.Framework;
using Quanto.Nn;
using Quanto.Tests.Generators.Samples;
using static TorchSharp.torch;

namespace Quanto.Tests.Generators;

/// <summary>The generated lifecycle members of the sample models compiled into this project by the real generator
/// (the analyzer reference in Quanto.Tests.csproj): typed calls, no reflection.</summary>
[TestFixture]
public sealed class LifecycleTests
{
    [Test]
    public void Freeze_drops_the_float_weights_of_quantized_layers()
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        var model = new Mlp();
        model.eval();
        model.Quantize();
        Tensor x = randn(4, 64);
        float[] dynamic = model.ForwardQuantized(x).data<float>().ToArray();
        Assert.That(model.state_dict()["fc1.weight"].numel(), Is.EqualTo(128 * 64));

        model.Freeze();

        Dictionary<string, Tensor> state = model.state_dict();
        Assert.That(state["fc1.weight"].numel(), Is.Zero);
        Assert.That(state["fc2.weight"].numel(), Is.Zero);
        Assert.That(state["head.weight"].numel(), Is.Zero);
        Assert.That(state["norm.weight"].numel(), Is.EqualTo(64), "[NoQuantize] layers keep their weights");
        Assert.That(state["fc1.bias"].numel(), Is.EqualTo(128), "biases stay float, shared with the twin");
        Assert.That(model.QuantizedModules().All(m => m.IsFrozen), Is.True);
        Tensor frozen = model.ForwardQuantized(x);
        Assert.That(frozen.shape, Is.EqualTo(new long[] { 4, 10 }));
        Assert.That(frozen.data<float>().ToArray(), Is.EqualTo(dynamic).Within(1e-4));
    }

    [Test]
    public void Dispose_releases_the_twins_quantized_weights()
    {
        using IDisposable noGrad = no_grad();
        var model = new Encoder();
        model.Quantize();
        model.Freeze();
        // Twins with quantized weights, the nested Block's included (its LayerNorm twin keeps float weights).
        List<QModule> twins = model.QuantizedModules().Where(t => t.QuantizedWeight is not null).ToList();
        Assert.That(twins, Has.Count.EqualTo(4));
        Assert.That(twins.All(t => !t.QuantizedWeight!.IsDisposed), Is.True);

        model.Dispose();

        Assert.That(twins.All(t => t.QuantizedWeight!.IsDisposed), Is.True, "every twin's codes are freed");
        Assert.That(model.IsQuantized, Is.False);
    }

    [Test]
    public void DisposeQuantized_before_Freeze_keeps_the_float_model_and_allows_quantizing_again()
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        var model = new Encoder();
        model.eval();
        Tensor x = randn(3, 64);
        float[] before = model.forward(x).data<float>().ToArray();
        model.Quantize(QType.QInt8);
        float[] quantized = model.ForwardQuantized(x).data<float>().ToArray();

        model.DisposeQuantized();
        model.DisposeQuantized(); // idempotent

        Assert.That(model.IsQuantized, Is.False);
        Assert.That(model.forward(x).data<float>().ToArray(), Is.EqualTo(before), "the shared float parameters live on");
        Assert.Throws<InvalidOperationException>(() => model.ForwardQuantized(x));
        model.Quantize(QType.QInt8);
        Assert.That(model.ForwardQuantized(x).data<float>().ToArray(), Is.EqualTo(quantized));
    }

    [Test]
    public void Quantize_refuses_a_nested_model_quantized_on_its_own_and_builds_nothing()
    {
        using IDisposable scope = NewDisposeScope();
        var model = new BlockList();
        Block second = model.named_children().Where(c => c.name == "blocks").Select(c => (TorchSharp.Modules.ModuleList<Block>)c.module)
            .Single()[1];
        second.Quantize();

        var error = Assert.Throws<InvalidOperationException>(() => model.Quantize())!;

        Assert.That(error.Message, Does.Contain("'blocks.1' is already quantized").And.Contain("outermost"));
        Assert.That(model.IsQuantized, Is.False);
        Assert.That(second.IsQuantized, Is.True, "the user's own quantization is kept");
        second.DisposeQuantized();
        model.Quantize();
        Assert.That(model.QuantizedModules().Count(), Is.GreaterThan(0));
    }

    [Test]
    public void QuantizationMap_is_a_quanto_qmap_known_at_compile_time()
    {
        const string map = Mlp.QuantizationMap; // a const: fixed when the model class was compiled
        Assert.That(map, Is.EqualTo(
            "{\"fc1\": {\"weights\": \"qint4\", \"activations\": \"none\"}, " +
            "\"fc2\": {\"weights\": \"qint4\", \"activations\": \"none\"}, " +
            "\"head\": {\"weights\": \"qint8\", \"activations\": \"none\"}}"));
        var parsed = Quanto.Serialization.QuantizationMap.Parse(map);
        Assert.That(parsed.Modules.Keys, Is.EqualTo(new[] { "fc1", "fc2", "head" }));
        Assert.That(parsed["head"], Is.EqualTo(new Quanto.Serialization.QuantizationSpec(QType.QInt8, null)));
        Assert.That(Encoder.QuantizationMap, Does.Contain("\"block.fc1\": {\"weights\": \"qint4\", \"activations\": \"qint8\"}"));
    }

    [Test]
    public void QuantizedModules_have_the_eager_paths()
    {
        using IDisposable scope = NewDisposeScope();
        var model = new BlockList();
        model.Quantize();
        var eager = new BlockListEager();
        Quantizer.Quantize(eager, QType.QInt8, QType.QInt8);
        Assert.That(model.QuantizedModules().Select(m => m.Path),
            Is.EquivalentTo(Quantizer.QuantizedModules(eager).Select(m => m.Path)));
        Assert.That(model.QuantizedModules().Select(m => m.Path), Does.Contain("blocks.1.fc2").And.Contain("heads.1"));
    }

    [Test]
    public void Calibrate_records_activation_scales()
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        var block = new Block();
        block.eval();
        block.Quantize();
        Assert.Throws<InvalidOperationException>(() => block.ForwardQuantized(randn(2, 32)), "uncalibrated qint8 input");
        using (block.Calibrate(momentum: 0.9)) block.ForwardQuantized(randn(8, 32));
        QModule fc1 = block.QuantizedModules().Single(m => m.Path == "fc1");
        Assert.That(fc1.input_scale.item<float>(), Is.Not.EqualTo(1f));
        Assert.That(block.ForwardQuantized(randn(2, 32)).shape, Is.EqualTo(new long[] { 2, 32 }));
    }

    [Test]
    public void Misuse_is_refused_with_a_message_that_says_what_to_do()
    {
        using IDisposable scope = NewDisposeScope();
        var model = new Cnn();
        var notYet = Assert.Throws<InvalidOperationException>(() => model.ForwardQuantized(randn(1, 3, 8, 8)));
        Assert.That(notYet!.Message, Does.Contain("call Quantize() first"));
        Assert.That(model.IsQuantized, Is.False);
        model.Quantize();
        Assert.That(model.IsQuantized, Is.True);
        Assert.Throws<InvalidOperationException>(() => model.Quantize());
    }
}
