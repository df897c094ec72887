using NUnit.Framework;
using Quanto.Nn;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.CalibrationChecks;

/// <summary>A batch holding NaN or infinity is refused with an error naming the module and the batch; the scale keeps
/// the value the earlier batches gave it.</summary>
public sealed class CalibrationBatchCheckTests
{
    private static (Module<Tensor, Tensor> Model, QModule Fc1) Quantized()
    {
        var model = Seeded.Create(() => new Mlp(4, 4, 2));
        model.eval();
        Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8);
        return (model, Quantizer.QuantizedModules(model).Single(m => m.Path == "fc1"));
    }

    [TestCase(float.NaN, "1 NaN and 0 infinite")]
    [TestCase(float.PositiveInfinity, "0 NaN and 1 infinite")]
    [TestCase(float.NegativeInfinity, "0 NaN and 1 infinite")]
    public void ANonFiniteBatchIsAnErrorNamingTheFirstLayerAndTheBatch(float bad, string counts)
    {
        (Module<Tensor, Tensor> model, QModule fc1) = Quantized();
        using (model)
        {
            using var calibration = new Calibration();
            using (Tensor first = tensor(new float[] { 1, -2.54f, 0, 0.5f }, [1, 4])) model.forward(first).Dispose();
            float scale = fc1.input_scale.item<float>();
            Assert.That(scale, Is.EqualTo(2.54f / 127).Within(1e-7));

            using Tensor second = tensor(new float[] { 1, bad, 0, 0 }, [1, 4]);
            var error = Assert.Throws<InvalidOperationException>(() => model.forward(second).Dispose())!;
            Assert.That(error.Message, Does.Contain("QLinear 'fc1'").And.Contain("batch 2").And.Contain(counts)
                .And.Contain("input"));
            Assert.That(fc1.input_scale.item<float>(), Is.EqualTo(scale), "the bad batch changed nothing");
        }
    }

    [Test]
    public void AnOverflowingOutputNamesTheLayerThatOverflowed()
    {
        using var model = Seeded.Create(() => Sequential(("fc", Linear(2, 1, hasBias: false))));
        model.eval();
        using (no_grad()) model.parameters().Single().copy_(tensor(new float[] { 3e38f, 3e38f }, [1, 2]));
        Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8);
        using var calibration = new Calibration();
        using Tensor x = tensor(new float[] { 1, 1 }, [1, 2]);
        var error = Assert.Throws<InvalidOperationException>(() => model.forward(x).Dispose())!;
        Assert.That(error.Message, Does.Contain("QLinear 'fc'").And.Contain("batch 1").And.Contain("output"));
    }
}
