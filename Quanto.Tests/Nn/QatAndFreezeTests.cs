using NUnit.Framework;
using Quanto.Nn;
using Quanto.Tensors;
using Quanto.Tests.TestSupport;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Nn;

public sealed class QatAndFreezeTests
{
    [TestCase(QType.QInt8, 1e-6, 1e-5, 1e-5)]
    [TestCase(QType.QInt4, 5e-3, 5e-3, 5e-3)]
    [TestCase(QType.QFloat8E4M3Fn, 5e-3, 5e-3, 5e-3)]
    public void GradientsMatchTheFloatLayerAtTheDequantizedWeights(QType qtype, double biasTol, double weightTol, double inputTol)
    {
        using var model = Seeded.Create(() => Sequential(("fc", Linear(256, 32))));
        Quantizer.Quantize(model, weights: qtype);
        var fc = (QLinear)model.named_modules().Single().module;
        using Tensor x = Seeded.Uniform([8, 256]).requires_grad_(true);
        using Tensor g = Seeded.Uniform([8, 32], seed: 9);
        model.forward(x).mul(g).sum().backward();

        // Reference: F.linear at the dequantized weight, as leaf tensors.
        using QuantizedWeight q = Quanto.Quantization.WeightQuantizer.Quantize(fc.FloatWeight!, qtype);
        using Tensor wq = q.Dequantize().detach().requires_grad_(true);
        using Tensor b = fc.FloatBias!.detach().clone().requires_grad_(true);
        using Tensor xr = x.detach().clone().requires_grad_(true);
        functional.linear(xr, wq, b).mul(g).sum().backward();

        Assert.Multiple(() =>
        {
            Assert.That(Reference.MaxRelativeError(fc.FloatBias!.grad!, b.grad!), Is.LessThanOrEqualTo(biasTol), "bias");
            Assert.That(Reference.MaxRelativeError(fc.FloatWeight!.grad!, wq.grad!), Is.LessThanOrEqualTo(weightTol), "weight");
            Assert.That(Reference.MaxRelativeError(x.grad!, xr.grad!), Is.LessThanOrEqualTo(inputTol), "input");
        });
    }

    [Test]
    public void QatWithInt4RecoversTheFloatLoss()
    {
        // Teacher: a fixed random MLP; student: same shape, trained float, then quantized w4 and tuned 50 steps.
        using var teacher = Seeded.Create(() => new Mlp(16, 64, 1), seed: 11);
        using Tensor x = Seeded.Uniform([256, 16], seed: 12);
        using Tensor y = teacher.forward(x).detach();
        using var student = Seeded.Create(() => new Mlp(16, 64, 1), seed: 13);
        double floatLoss = Train(student, x, y, steps: 300, lr: 0.1);

        Quantizer.Quantize(student, weights: QType.QInt4);
        double quantizedLoss = Loss(student, x, y);
        double tunedLoss = Train(student, x, y, steps: 50, lr: 0.02);
        TestContext.Out.WriteLine($"loss float {floatLoss:E3}, w4 before QAT {quantizedLoss:E3}, after 50 steps {tunedLoss:E3}");
        Assert.That(tunedLoss, Is.LessThanOrEqualTo(floatLoss * 1.10));
    }

    [Test]
    public void FreezeDropsParameterMemory()
    {
        using var model = Seeded.Create(() => new Mlp());
        long floatBytes = Quantizer.ModelBytes(model);
        Quantizer.Quantize(model, weights: QType.QInt8);
        Assert.That(Quantizer.ModelBytes(model), Is.EqualTo(floatBytes + 4 * 4), "dynamic mode shares the float weights (+4 scalar scales)");
        Assert.That(Quantizer.Freeze(model), Is.EqualTo(2));
        long frozenBytes = Quantizer.ModelBytes(model);
        // 784*256 + 256*10 int8 codes, fp32 per-row scales (266), fp32 biases (266), 4 scalar scales.
        long expected = 784 * 256 + 256 * 10 + 266 * 4 + 266 * 4 + 4 * 4;
        Assert.That(frozenBytes, Is.EqualTo(expected));
        Assert.That(model.parameters().Count(), Is.EqualTo(2), "only the biases remain parameters");
        TestContext.Out.WriteLine($"float {floatBytes} bytes -> frozen int8 {frozenBytes} bytes");
    }

    [Test]
    public void DtypeMovesKeepWeightsQuantizedAndBadDtypesAreClear()
    {
        using var model = Seeded.Create(() => new Mlp(64, 32, 4));
        model.eval();
        Quantizer.Quantize(model, weights: QType.QInt4);
        Quantizer.Freeze(model);
        using Tensor x = Seeded.Uniform([2, 64]);
        using Tensor y32 = model.forward(x);
        model.to(ScalarType.BFloat16);
        QModule fc1 = Quantizer.QuantizedModules(model).First();
        Assert.That(fc1.QuantizedWeight!.DType, Is.EqualTo(ScalarType.BFloat16));
        Assert.That(fc1.QuantizedWeight, Is.TypeOf<WeightQBitsTensor>());
        using Tensor y16 = model.forward(x.to(ScalarType.BFloat16));
        Assert.That(y16.dtype, Is.EqualTo(ScalarType.BFloat16));
        Assert.That(Reference.CosineError(y32, y16), Is.LessThan(1e-3));

        // TorchSharp itself refuses integer dtypes; a float dtype the scales cannot take is refused by name.
        var error = Assert.Throws<InvalidOperationException>(() => model.to(ScalarType.Float64))!;
        Assert.That(error.Message, Does.Contain("QLinear 'fc1'").And.Contain("Float64").And.Contain("stays quantized"));
    }

    private static double Train(Module<Tensor, Tensor> model, Tensor x, Tensor y, int steps, double lr)
    {
        model.train();
        using var optimizer = optim.SGD(model.parameters(), lr);
        for (int step = 0; step < steps; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            functional.mse_loss(model.forward(x), y).backward();
            optimizer.step();
        }
        return Loss(model, x, y);
    }

    private static double Loss(Module<Tensor, Tensor> model, Tensor x, Tensor y)
    {
        model.eval();
        using var noGrad = no_grad();
        using Tensor loss = functional.mse_loss(model.forward(x), y);
        return loss.item<float>();
    }
}
