using NUnit.Framework;
using Quanto.Nn;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Nn;

/// <summary>Module swapping, include/exclude patterns, and the report of what stayed float.</summary>
public sealed class QuantizerTests
{
    [Test]
    public void SwapsLinearAndConvFieldsAndReportsThem()
    {
        using Cnn model = Seeded.Create(() => new Cnn());
        QuantizationReport report = Quantizer.Quantize(model, weights: QType.QInt8);
        Assert.That(report.Quantized.Select(q => q.Path), Is.EqualTo(new[] { "conv1", "conv2", "fc" }));
        Assert.That(report.Skipped, Is.Empty);
        var modules = model.named_modules().ToDictionary(m => m.name, m => m.module);
        Assert.That(modules["conv1"], Is.TypeOf<QConv2d>());
        Assert.That(modules["fc"], Is.TypeOf<QLinear>());
        Assert.That(((QModule)modules["fc"]).Path, Is.EqualTo("fc"));
        // The state dict still uses the float keys plus the scale buffers.
        Assert.That(model.state_dict().Keys, Is.SupersetOf(new[] { "fc.weight", "fc.bias", "fc.input_scale", "conv1.output_scale" }));
    }

    [Test]
    public void SealedFieldTypesAreRefusedWithAReasonAndLeftIntact()
    {
        using var model = new SealedFields();
        QuantizationReport report = Quantizer.Quantize(model, weights: QType.QInt8);
        Assert.That(report.Quantized, Is.Empty);
        SkippedModuleInfo skipped = report.Skipped.Single();
        Assert.That(skipped.Path, Is.EqualTo("fc"));
        Assert.That(skipped.Reason, Does.Contain("declared as Linear").And.Contain("Module<Tensor, Tensor>").And.Contain("[Quantize]"));
        Assert.That(model.named_modules().Single().module, Is.TypeOf<TorchSharp.Modules.Linear>());
        using Tensor y = model.forward(ones(2, 8));
        Assert.That(y.shape, Is.EqualTo(new long[] { 2, 4 }));
    }

    [Test]
    public void SwapsInsideSequentialAndModuleList()
    {
        using var model = Sequential(("proj", Linear(8, 16)), ("act", ReLU()), ("out", Linear(16, 4)));
        Quantizer.Quantize(model, weights: QType.QInt8);
        Assert.That(model.named_modules().Select(m => m.module.GetType().Name), Is.EqualTo(new[] { "QLinear", "ReLU", "QLinear" }));
        using Tensor y = model.forward(ones(3, 8));
        Assert.That(y.shape, Is.EqualTo(new long[] { 3, 4 }));

        using var layers = new Layers();
        QuantizationReport report = Quantizer.Quantize(layers, weights: QType.QInt4);
        Assert.That(report.Quantized.Select(q => q.Path), Is.EqualTo(new[] { "layers.0", "layers.1" }));
        Assert.That(layers.named_modules().Where(m => m.name.StartsWith("layers.")).Select(m => m.module),
            Is.All.TypeOf<QLinear>());
        using Tensor z = layers.forward(ones(2, 4));
        Assert.That(z.shape, Is.EqualTo(new long[] { 2, 4 }));
    }

    [Test]
    public void IncludeAndExcludeUseFnmatchOnPaths()
    {
        using var model = new Stack();
        QuantizationReport report = Quantizer.Quantize(model, weights: QType.QInt8,
            include: ["blocks.*.mlp.*"], exclude: ["*.fc2"]);
        Assert.That(report.Quantized.Select(q => q.Path), Is.EqualTo(new[] { "blocks.0.mlp.fc1", "blocks.1.mlp.fc1" }));

        using var model2 = Sequential(("body", Linear(4, 4)), ("lm_head", Linear(4, 4)));
        report = Quantizer.Quantize(model2, weights: QType.QInt8, exclude: ["lm_head"]);
        Assert.That(report.Quantized.Select(q => q.Path), Is.EqualTo(new[] { "body" }));
    }

    [TestCase("blocks.0.mlp.fc1", "blocks.*.mlp.*", true)]
    [TestCase("blocks.10.attn", "blocks.?.attn", false)]
    [TestCase("blocks.1.attn", "blocks.[0-3].attn", true)]
    [TestCase("blocks.7.attn", "blocks.[!0-3].attn", true)]
    [TestCase("lm_head", "lm_head", true)]
    [TestCase("lm_head.x", "lm_head", false)]
    [TestCase("a+b", "a+b", true)]
    [TestCase("fc[1", "fc[1", true)]
    public void FnmatchSemantics(string name, string pattern, bool expected) =>
        Assert.That(Fnmatch.IsMatch(name, pattern), Is.EqualTo(expected));

    [Test]
    public void UnsupportedLayersAreListedNotSilentlySkipped()
    {
        using var model = Sequential(("embed", Embedding(10, 4)), ("norm", BatchNorm1d(4)), ("fc", Linear(4, 2)));
        QuantizationReport report = Quantizer.Quantize(model, weights: QType.QInt8);
        Assert.That(report.Quantized.Select(q => q.Path), Is.EqualTo(new[] { "fc" }));
        Assert.That(report.Skipped.Select(s => s.Path), Is.EqualTo(new[] { "embed", "norm" }));
        Assert.That(report.Skipped[0].Reason, Does.Contain("only when asked (embeddings: true)"));
        Assert.That(report.Skipped[1].Reason, Does.Contain("no quantized counterpart"));
        Assert.That(report.ToString(), Does.Contain("embed: Embedding left float"));
    }

    [Test]
    public void LayerNormIsQuantizedOnlyWithActivations()
    {
        using var model = Sequential(("norm", LayerNorm(4)), ("fc", Linear(4, 2)));
        Assert.That(Quantizer.Quantize(model, weights: QType.QInt8).Quantized.Select(q => q.Path), Is.EqualTo(new[] { "fc" }));
        using var model2 = Sequential(("norm", LayerNorm(4)), ("fc", Linear(4, 2)));
        QuantizationReport report = Quantizer.Quantize(model2, weights: QType.QInt8, activations: QType.QInt8);
        Assert.That(report.Quantized.Select(q => q.Path), Is.EqualTo(new[] { "norm", "fc" }));
    }

    [Test]
    public void BadArgumentsAreClearErrors()
    {
        using var model = new Mlp(8, 8, 2);
        Assert.That(Assert.Throws<ArgumentException>(() => Quantizer.Quantize(model))!.Message, Does.Contain("weights qtype"));
        Assert.That(Assert.Throws<ArgumentException>(() => Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt4))!
            .Message, Does.Contain("qint4"));
        Assert.Throws<ArgumentOutOfRangeException>(() => Quantizer.Quantize(model, weights: QType.QInt4, groupSize: 12));
    }

    [Test]
    public void QuantizingTwiceLeavesQuantizedModulesAlone()
    {
        using var model = new Mlp(8, 8, 2);
        Quantizer.Quantize(model, weights: QType.QInt8);
        QuantizationReport second = Quantizer.Quantize(model, weights: QType.QInt4);
        Assert.That(second.Quantized, Is.Empty);
        Assert.That(Quantizer.QuantizedModules(model).Select(m => m.WeightQType), Is.All.EqualTo(QType.QInt8));
    }
}
