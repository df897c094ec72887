using NUnit.Framework;
using Quanto.Serialization;
using Quanto.Tests.Generators.Samples;
using Quanto.Tests.Serialization;
using static TorchSharp.torch;

namespace Quanto.Tests.Generators;

/// <summary>
/// SaveQuantized after a Quantize override writes the map of the modules built (not the compile-time
/// QuantizationMap), and LoadQuantized into a fresh instance builds its twins from that map: same modules, same
/// outputs bit for bit; a layer the map does not list loads float (as Quantize(..., exclude) saved it). A file whose
/// map does not fit the model's [Quantize] layers is refused with a message naming the module, the file and what to
/// do.
/// </summary>
[TestFixture]
public sealed class OverrideSaveLoadTests : TestSupport.TempFolderTests
{
    // Encoder's attribute says qint8 weights and Block's qint4 (group 32) with qint8 activations: the override makes
    // every layer, block.norm's activations included, fp8 e4m3fn weights with qint8 activations.
    [TestCase(".safetensors")]
    [TestCase(".qnt")]
    public void Encoder_saved_after_an_override_loads_into_a_fresh_instance(string extension) =>
        RoundTrip(() => new Encoder(), QType.QFloat8E4M3Fn, QType.QInt8, null, [4, 64], extension);

    [Test]
    public void BlockList_with_int4_groups_of_32_round_trips_through_qnt() =>
        RoundTrip(() => new BlockList(), QType.QInt4, null, 32, [4, 64], ".qnt");

    [Test]
    public void Cnn_with_int2_weights_round_trips_through_safetensors() =>
        RoundTrip(() => new Cnn(), QType.QInt2, null, null, [4, 3, 8, 8], ".safetensors");

    [Test]
    public void A_LayerNorm_left_float_by_the_override_is_saved_as_a_float_layer()
    {
        string path = RoundTrip(() => new Block(), QType.QInt8, null, null, [4, 32], ".safetensors");
        using QuantizedCheckpoint checkpoint = QuantizedCheckpoint.Load(path);
        Assert.That(checkpoint.QuantizationMap.Modules.Keys, Is.EqualTo(new[] { "fc1", "fc2" }));
        Assert.That(checkpoint.StateDict.ContainsKey("norm.weight"), Is.True);
        Assert.That(checkpoint.StateDict.ContainsKey("norm.input_scale"), Is.False);
    }

    [Test]
    public void A_file_that_keeps_a_layer_float_loads_with_that_layer_float()
    {
        // What a run-time Quantize(..., exclude) saves, here written by the eager path: fc stays a float layer.
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        var eager = new CnnEager();
        eager.eval();
        var swappedOut = eager.named_modules().Select(m => m.module).ToList();
        Quantizer.Quantize(eager, QType.QInt8, exclude: ["fc"]);
        Quantizer.Freeze(eager);
        string path = Path.Combine(Folder, "cnn.safetensors");
        QuantizedModel.Save(eager, path);

        var fresh = new Cnn();
        fresh.eval();
        fresh.LoadQuantized(path);
        Assert.That(fresh.QuantizedModules().Select(m => m.Path),
            Is.EqualTo(Quantizer.QuantizedModules(eager).Select(m => m.Path)));
        Assert.That(fresh.QuantizedModules().Select(m => m.Path), Has.None.EqualTo("fc"));
        Tensor x = randn(2, 3, 8, 8);
        Assert.That(Values(fresh.ForwardQuantized(x)), Is.EqualTo(Values(eager.forward(x))));
        GC.KeepAlive(swappedOut);
    }

    [Test]
    public void An_eager_w8a8_file_loads_into_a_weights_only_class_LayerNorm_twin_included()
    {
        // ResidualStack's attribute quantizes weights only; its LayerNorm still has a slot, so the eager w8a8 file
        // (QLayerNorm with its activation scales) loads, and runs as the eager model does.
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        var eager = new ResidualStackEager();
        eager.eval();
        var swappedOut = eager.named_modules().Select(m => m.module).ToList();
        Quantizer.Quantize(eager, QType.QInt8, QType.QInt8);
        using (new Calibration(eager)) eager.forward(randn(8, 64));
        Quantizer.Freeze(eager);
        string path = Path.Combine(Folder, "stack.qnt");
        QuantizedModel.Save(eager, path);

        var fresh = new ResidualStack();
        fresh.eval();
        fresh.LoadQuantized(path);
        Assert.That(fresh.QuantizedModules().Select(m => m.Describe()),
            Is.EqualTo(Quantizer.QuantizedModules(eager).Select(m => m.Describe())));
        Tensor x = randn(4, 64);
        Assert.That(Values(fresh.ForwardQuantized(x)), Is.EqualTo(Values(eager.forward(x))));
        GC.KeepAlive(swappedOut);
    }

    [Test]
    public void A_file_that_quantizes_a_layer_the_model_keeps_float_is_refused()
    {
        using IDisposable scope = NewDisposeScope();
        // Mlp keeps norm float ([NoQuantize]); the eager w8a8 swap quantizes it.
        var eager = new MlpEager();
        var swappedOut = eager.named_modules().Select(m => m.module).ToList();
        Quantizer.Quantize(eager, QType.QInt8, QType.QInt8);
        string path = Path.Combine(Folder, "mlp.qnt");
        QuantizedModel.Save(eager, path);

        var fresh = new Mlp();
        var error = Assert.Throws<QuantoFormatException>(() => fresh.LoadQuantized(path))!;
        Assert.That(error.Message, Does.Contain(path).And.Contain("names module 'norm'")
            .And.Contain("one whose attributes quantize that layer"));
        GC.KeepAlive(swappedOut);
    }

    [Test]
    public void A_file_that_quantizes_LayerNorm_weights_is_refused()
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        var block = new Block();
        block.Quantize(QType.QInt8, QType.QInt8);
        string path = Path.Combine(Folder, "block.safetensors");
        block.SaveQuantized(path);
        string mapPath = Path.Combine(Folder, QuantizationMap.FileNameFor(path));
        SerializationTestUtil.WithoutSetRecord(path); // the map is edited below, as a hand-made file
        QuantizationMap map = QuantizationMap.Load(mapPath);
        map["norm"] = new QuantizationSpec(QType.QInt8, QType.QInt8);
        map.Save(mapPath);

        var fresh = new Block();
        var error = Assert.Throws<QuantoFormatException>(() => fresh.LoadQuantized(path))!;
        Assert.That(error.Message, Does.Contain(path).And.Contain("module 'norm' is a LayerNorm")
            .And.Contain("quantizes them to qint8"));
    }

    [Test]
    public void A_model_quantized_otherwise_than_the_file_is_refused()
    {
        using IDisposable scope = NewDisposeScope();
        var block = new Block();
        block.Quantize(QType.QInt8, QType.QInt8);
        string path = Path.Combine(Folder, "block.qnt");
        block.SaveQuantized(path);

        var attributes = new Block();
        attributes.Quantize();
        var error = Assert.Throws<QuantoFormatException>(() => attributes.LoadQuantized(path))!;
        Assert.That(error.Message, Does.Contain("module 'fc1'").And.Contain("quantize the model the same way"));
    }

    [Test]
    public void A_load_that_fails_part_way_leaves_nothing_built_and_a_retry_on_the_same_instance_works()
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        var saved = new Encoder();
        saved.eval();
        saved.Quantize(QType.QInt8);
        saved.Freeze();
        string path = Path.Combine(Folder, "encoder.safetensors");
        saved.SaveQuantized(path);
        string mapPath = Path.Combine(Folder, QuantizationMap.FileNameFor(path));
        SerializationTestUtil.WithoutSetRecord(path); // the map is edited below, as a hand-made file
        string map = File.ReadAllText(mapPath);
        // 4-bit activations for "head" fail on Encoder's last layer, after the nested block's table was built.
        QuantizationMap broken = QuantizationMap.Parse(map);
        broken["head"] = new QuantizationSpec(QType.QInt8, QType.QInt4);
        File.WriteAllText(mapPath, broken.ToJson());

        var fresh = new Encoder();
        fresh.eval();
        var error = Assert.Throws<QuantoFormatException>(() => fresh.LoadQuantized(path))!;

        Assert.That(error.Message, Does.Contain("module 'head'"));
        Assert.That(fresh.IsQuantized, Is.False);
        Block block = fresh.named_children().Select(c => c.module).OfType<Block>().Single();
        Assert.That(block.IsQuantized, Is.False, "the nested twins built before the failure were disposed");
        File.WriteAllText(mapPath, map);
        fresh.LoadQuantized(path);
        Tensor x = randn(2, 64);
        Assert.That(fresh.ForwardQuantized(x).data<float>().ToArray(),
            Is.EqualTo(saved.ForwardQuantized(x).data<float>().ToArray()));
    }

    /// <summary>Quantizes with the override (calibrating when activations are quantized), freezes, saves, checks the
    /// saved map, loads into a fresh instance with other initial weights and compares; returns the file.</summary>
    private string RoundTrip(Func<IGeneratedModel> create, QType? weights, QType? activations, int? group,
        long[] inputShape, string extension)
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        manual_seed(1);
        IGeneratedModel model = create();
        ((nn.Module)model).eval();
        model.Quantize(weights, activations, group);
        if (activations is not null)
        {
            using (model.Calibrate()) model.ForwardQuantized(randn(inputShape));
        }
        model.Freeze();
        Tensor x = randn(inputShape);
        float[] expected = model.ForwardQuantized(x).data<float>().ToArray();
        string path = Path.Combine(Folder, "model" + extension);
        model.SaveQuantized(path);
        using (QuantizedCheckpoint saved = QuantizedCheckpoint.Load(path))
        {
            Assert.That(saved.QuantizationMap.Select(p => $"{p.Key}: {QuantizedModel.Format(p.Value)}"),
                Is.EqualTo(model.QuantizedModules()
                    .Select(m => $"{m.Path}: {QuantizedModel.Format(new(m.WeightQType, m.ActivationQType))}")),
                "the map of the modules built");
        }

        manual_seed(2);
        IGeneratedModel fresh = create();
        ((nn.Module)fresh).eval();
        fresh.LoadQuantized(path);
        Assert.That(fresh.ForwardQuantized(x).data<float>().ToArray(), Is.EqualTo(expected));
        Assert.That(OverrideTests.Describe(fresh.QuantizedModules()),
            Is.EqualTo(OverrideTests.Describe(model.QuantizedModules())));
        Assert.That(fresh.QuantizedModules().All(m => m.IsFrozen || m.WeightQType is null), Is.True);
        return path;
    }

    private static float[] Values(Tensor tensor) => tensor.contiguous().data<float>().ToArray();
}
