using NUnit.Framework;
using Quanto.Nn;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Nn;

public sealed class CalibrationTests
{
    [Test]
    public void FirstBatchSetsTheScaleLaterBatchesBlendWithMomentumForInputsToo()
    {
        using var layer = Seeded.Create(() => Sequential(("fc", Linear(4, 4))));
        layer.eval();
        Quantizer.Quantize(layer, weights: QType.QInt8, activations: QType.QInt8);
        var fc = (QLinear)layer.named_modules().Single().module;
        using (new Calibration(momentum: 0.75, streamline: false))
        {
            layer.forward(tensor(new float[] { 1, -2.54f, 0, 0 }, [1, 4])).Dispose();
            Assert.That(fc.input_scale.item<float>(), Is.EqualTo(2.54f / 127).Within(1e-7));
            layer.forward(tensor(new float[] { 5.08f, 0, 0, 0 }, [1, 4])).Dispose();
        }
        // 0.75 * 0.02 + 0.25 * 0.04 = 0.025
        Assert.That(fc.input_scale.item<float>(), Is.EqualTo(0.025f).Within(1e-7));
        Assert.That(fc.output_scale.item<float>(), Is.Not.EqualTo(1f));
    }

    [Test]
    public void PercentileObserverIgnoresOutliers()
    {
        var values = Enumerable.Range(1, 10000).Select(i => i / 10000f).ToArray();
        values[0] = 1000f; // one outlier
        using Tensor x = tensor(values);
        Assert.That(new AbsmaxObserver().Observe(x), Is.EqualTo(1000));
        Assert.That(new PercentileObserver(99.9).Observe(x), Is.EqualTo(0.9991).Within(1e-4));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new PercentileObserver(0));
    }

    [Test]
    public void UncalibratedActivationQuantizationIsAnError()
    {
        using var model = Seeded.Create(() => new Mlp(8, 8, 2));
        model.eval();
        Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8);
        var error = Assert.Throws<InvalidOperationException>(() => model.forward(ones(1, 8)))!;
        Assert.That(error.Message, Does.Contain("QLinear 'fc1'").And.Contain("never calibrated").And.Contain("Calibration"));
    }

    [Test]
    public void StreamlineDropsOutputQuantizationWhereOnlyFloatOpsConsume()
    {
        // fc1 feeds relu (a float op) -> streamlined; a -> b directly -> a keeps its output quantization.
        using var model = Seeded.Create(() => new Mlp(8, 8, 2));
        model.eval();
        Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8);
        using var chain = Seeded.Create(() => Sequential(("a", Linear(8, 8)), ("b", Linear(8, 2))));
        chain.eval();
        Quantizer.Quantize(chain, weights: QType.QInt8, activations: QType.QInt8);
        Calibration calibration;
        using (calibration = new Calibration())
        {
            model.forward(Seeded.Uniform([4, 8])).Dispose();
            chain.forward(Seeded.Uniform([4, 8])).Dispose();
        }
        Assert.That(calibration.StreamlinedModules, Is.EquivalentTo(new[] { "fc1", "fc2", "b" }));
        var a = (QModule)chain.named_modules().First().module;
        Assert.That(a.output_scale.item<float>(), Is.Not.EqualTo(1f));
    }
}
