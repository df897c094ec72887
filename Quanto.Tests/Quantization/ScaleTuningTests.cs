using NUnit.Framework;
using Quanto.Nn;
using Quanto.Quantization;
using Quanto.Tensors;
using Quanto.Tests.TestSupport;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Quantization;

/// <summary>Quantizer.TuneScales: group scales and shifts fitted by gradient descent, codes unchanged.</summary>
public sealed class ScaleTuningTests
{
    private static readonly ScaleTuningOptions Fast = new() { Epochs = 60, LearningRate = 1e-2 };

    private static Tensor[] Batches(int count, long rows, long features, long seed) =>
        Enumerable.Range(0, count).Select(i => Reference.RandomNormal(rows, features, seed + i)).ToArray();

    private static Tensor[] Outputs(Module<Tensor, Tensor> model, IEnumerable<Tensor> batches)
    {
        using var noGrad = no_grad();
        return batches.Select(model.forward).ToArray();
    }

    private static WeightQBitsTensor FrozenWeight(Module model, string path) =>
        (WeightQBitsTensor)Quantizer.QuantizedModules(model).Single(m => m.Path == path).QuantizedWeight!;

    [Test]
    public void RecoversScalesAndShiftsThatReproduceATargetLayerExactly()
    {
        // The target layer is the quantized one with other scales and shifts on the same codes (w = q s* - t*), so
        // tuning can reach it exactly; the target's output is plain TorchSharp float math on that weight.
        using var model = Seeded.Create(() => Sequential(("fc", Linear(32, 12))));
        model.eval();
        Quantizer.Quantize(model, QType.QInt4, groupSize: 16);
        Quantizer.Freeze(model);
        WeightQBitsTensor before = FrozenWeight(model, "fc");
        byte[] packed = before.Packed.bytes.ToArray();
        using Tensor codes = before.UnpackCodes().to(ScalarType.Float32);
        using Tensor scaleFactor = rand(before.Scale.shape, generator: new Generator(5)).mul(0.1).add(0.95);
        using Tensor shiftSteps = rand(before.Shift.shape, generator: new Generator(6)).sub(0.5).mul(0.6);
        using Tensor wantScale = before.Scale.mul(scaleFactor);
        using Tensor wantShift = before.Shift.add(before.Scale.mul(shiftSteps));
        using Tensor targetWeight = codes.mul(wantScale).sub(wantShift).view(12, 32);
        Parameter bias = Quantizer.QuantizedModules(model).Single().FloatBias!;
        Tensor[] inputs = Batches(4, 64, 32, seed: 10);
        Tensor[] targets = inputs.Select(x => functional.linear(x, targetWeight, bias).detach()).ToArray();

        ScaleTuningReport report = Quantizer.TuneScales(model, inputs, targets, Fast);

        TestContext.Out.WriteLine(report);
        Assert.That(report.Kept, Is.True);
        Assert.That(report.Layers, Is.EqualTo(new[] { "fc" }));
        Assert.That(report.EpochLosses, Has.Count.EqualTo(60));
        Assert.That(report.FinalLoss, Is.LessThan(report.InitialLoss * 1e-3));
        WeightQBitsTensor after = FrozenWeight(model, "fc");
        Assert.That(after, Is.Not.SameAs(before));
        Assert.That(after.Packed.bytes.ToArray(), Is.EqualTo(packed), "the codes stay as they were");
        Assert.That(Reference.MaxRelativeError(after.Scale, wantScale), Is.LessThan(0.01));
        Assert.That(Reference.MeanAbsError(after.Shift, wantShift),
            Is.LessThan(0.02 * wantScale.abs().mean().item<float>()));
        // The frozen kernels run the tuned weight.
        using Tensor y = Outputs(model, [inputs[0]])[0];
        Assert.That(Reference.MaxRelativeError(y, targets[0]), Is.LessThan(0.01));
    }

    [Test]
    public void BringsAQuantizedModelCloserToTheFloatModelOnHeldOutInputs()
    {
        using var reference = Seeded.Create(() => new Mlp(32, 64, 8));
        using var model = Seeded.Create(() => new Mlp(32, 64, 8));
        foreach (Module m in new Module[] { reference, model }) m.eval();
        Quantizer.Quantize(model, QType.QInt4, groupSize: 16);
        Quantizer.Freeze(model);
        Tensor[] inputs = Batches(16, 64, 32, seed: 20);
        Tensor[] heldOut = Batches(2, 64, 32, seed: 40);
        Tensor[] floatOut = Outputs(reference, heldOut);
        double Error() => Outputs(model, heldOut).Zip(floatOut, Reference.MeanAbsError).Average();
        double untuned = Error();

        var log = new StringWriter();
        ScaleTuningReport report = Quantizer.TuneScales(model, inputs, Outputs(reference, inputs),
            new ScaleTuningOptions { Epochs = 20, LearningRate = 5e-3 }, new ConsoleProgressBar(log));

        double tuned = Error();
        TestContext.Out.WriteLine($"{report}\nheld-out mean |dy|: {untuned:G4} -> {tuned:G4}");
        Assert.That(report.Layers, Is.EqualTo(new[] { "fc1", "fc2" }));
        Assert.That(report.FinalLoss, Is.LessThan(report.InitialLoss * 0.8));
        Assert.That(tuned, Is.LessThan(untuned * 0.95));
        Assert.That(log.ToString(), Does.Contain("scale tuning  20/20 epoch 20").And.Contain("100%"));
    }

    [Test]
    public void ListsTheModulesItCannotTuneAndRefusesWhenNoneIsLeft()
    {
        using var model = Seeded.Create(() => Sequential(("a", Linear(16, 16)), ("b", Linear(16, 8)),
            ("c", Linear(8, 8))));
        model.eval();
        Quantizer.Quantize(model, QType.QInt8, include: ["a"]);
        Quantizer.Quantize(model, QType.QInt4, groupSize: 8, include: ["b", "c"]);
        Quantizer.Freeze(model);
        Tensor[] inputs = Batches(2, 16, 16, seed: 50);
        Tensor[] targets = Outputs(model, inputs).Select(t => t.mul(1.01)).ToArray();

        ScaleTuningReport report = Quantizer.TuneScales(model, inputs, targets, new ScaleTuningOptions { Epochs = 2 });
        Assert.That(report.Layers, Is.EqualTo(new[] { "b", "c" }));
        Assert.That(report.Skipped.Select(s => (s.Path, s.Reason)), Is.EqualTo(new[]
        {
            ("a", "qint8 weights have no group-wise scale and shift to tune"),
        }));

        using var int8 = Seeded.Create(() => Sequential(("a", Linear(16, 8))));
        Quantizer.Quantize(int8, QType.QInt8);
        var error = Assert.Throws<InvalidOperationException>(() =>
            Quantizer.TuneScales(int8, inputs, Outputs(int8, inputs)));
        Assert.That(error!.Message, Does.Contain("a: not frozen").And.Contain("Quantize to qint2/qint4 and Freeze"));
    }

    [Test]
    public void LeavesTheWeightsAsTheyWereWhenTheLossIsNotFiniteOrDoesNotImprove()
    {
        using var model = Seeded.Create(() => Sequential(("fc", Linear(16, 8))));
        model.eval();
        Quantizer.Quantize(model, QType.QInt2, groupSize: 8);
        Quantizer.Freeze(model);
        WeightQBitsTensor before = FrozenWeight(model, "fc");
        Tensor[] inputs = Batches(2, 8, 16, seed: 60);
        QModule[] modules = Quantizer.QuantizedModules(model).ToArray();

        var error = Assert.Throws<InvalidOperationException>(() => Quantizer.TuneScales(modules, 2,
            i => model.forward(inputs[i]).sum().mul(double.NaN)));
        Assert.That(error!.Message, Does.Contain("The loss of batch 0 is NaN"));
        Assert.That(FrozenWeight(model, "fc"), Is.SameAs(before));

        // No gradient reaches the scales: the loss cannot fall, so nothing is replaced.
        ScaleTuningReport flat = Quantizer.TuneScales(modules, 2, i => model.forward(inputs[i]).sum().mul(0).add(1),
            new ScaleTuningOptions { Epochs = 2 });
        Assert.That(flat.Kept, Is.False);
        Assert.That(flat.Summary, Does.StartWith("Scale tuning: 1 layer(s), loss 1.000E+000 -> 1.000E+000")
            .And.Contain("not better: weights left as they were"));
        Assert.That(flat.ToString(), Does.StartWith(flat.Summary + Environment.NewLine));
        Assert.That(FrozenWeight(model, "fc"), Is.SameAs(before));
        Assert.That(modules.All(m => m.Probe is null), Is.True, "the probe is detached");
    }

    [Test]
    public void RejectsBadOptionsAndMismatchedTargets()
    {
        using var model = Seeded.Create(() => Sequential(("fc", Linear(16, 8))));
        Quantizer.Quantize(model, QType.QInt4, groupSize: 8);
        Quantizer.Freeze(model);
        Tensor[] inputs = Batches(2, 8, 16, seed: 70);
        Assert.Throws<ArgumentOutOfRangeException>(() => Quantizer.TuneScales(model, inputs, Outputs(model, inputs),
            new ScaleTuningOptions { Epochs = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => Quantizer.TuneScales(model, inputs, Outputs(model, inputs),
            new ScaleTuningOptions { LearningRate = double.NaN }));
        var count = Assert.Throws<ArgumentException>(() => Quantizer.TuneScales(model, inputs,
            Outputs(model, inputs.Take(1))));
        Assert.That(count!.Message, Does.Contain("2 batches, 1 targets"));
        var shape = Assert.Throws<ArgumentException>(() => Quantizer.TuneScales(model, inputs,
            inputs.Select(x => zeros(8, 3)).ToArray()));
        Assert.That(shape!.Message, Does.Contain("batch 0 has shape [8, 8], its target [8, 3]"));
    }
}
