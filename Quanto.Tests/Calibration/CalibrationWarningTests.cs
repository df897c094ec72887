using NUnit.Framework;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.CalibrationChecks;

/// <summary>The warnings name the module, give the measured numbers and say what to do; ordinary batches give none.
/// </summary>
public sealed class CalibrationWarningTests
{
    private static IReadOnlyList<CalibrationWarning> Calibrate(Module<Tensor, Tensor> model, Observer? observer,
        params Tensor[] batches)
    {
        model.eval();
        Calibration calibration;
        using (calibration = new Calibration(observer: observer, streamline: false))
        {
            foreach (Tensor batch in batches) model.forward(batch).Dispose();
        }
        return calibration.Warnings;
    }

    private static Tensor Gaussian(long rows, long cols, long seed, double scale = 1)
    {
        using Tensor raw = Reference.RandomNormal(rows, cols, seed);
        return raw.mul(scale);
    }

    [Test]
    public void ShuffledGaussianBatchesGiveNoWarning()
    {
        using var model = Seeded.Create(() => Sequential(("fc", Linear(64, 16))));
        Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8);
        using Tensor a = Gaussian(32, 64, 1), b = Gaussian(32, 64, 2), c = Gaussian(32, 64, 3);
        Assert.That(Calibrate(model, null, a, b, c), Is.Empty);
    }

    [Test]
    public void ALoudStartAndAQuietTailWarnsAboutTheMomentumAverage()
    {
        using var model = Seeded.Create(() => Sequential(("fc", Linear(64, 16))));
        Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8);
        using Tensor loud = Gaussian(32, 64, 1, 50);
        using Tensor quiet1 = Gaussian(32, 64, 2, 0.5), quiet2 = Gaussian(32, 64, 3, 0.5);
        CalibrationWarning warning = Calibrate(model, null, loud, quiet1, quiet2)
            .First(w => w.Kind == CalibrationWarningKind.RangeVaries);
        Assert.That(warning.Module, Is.EqualTo("fc"));
        Assert.That(warning.Message,
            Does.Contain("QLinear 'fc'").And.Contain("input").And.Contain("RunningMaxObserver"));

        // The running maximum keeps the loud batch's range; the warning then speaks of the quiet batches instead.
        using var again = Seeded.Create(() => Sequential(("fc", Linear(64, 16))));
        Quantizer.Quantize(again, weights: QType.QInt8, activations: QType.QInt8);
        CalibrationWarning running = Calibrate(again, new RunningMaxObserver(), loud, quiet1, quiet2)
            .First(w => w.Kind == CalibrationWarningKind.RangeVaries);
        Assert.That(running.Message, Does.Not.Contain("observer: new RunningMaxObserver()"));
    }

    [Test]
    public void AnOutlierDominatedLayerNormInputWarnsWithTheRemedies()
    {
        // A residual-sum-like input: mean |x| ~0.8 with a few values at 200 (max |x| / mean |x| ~ 250).
        using var model = Seeded.Create(() => Sequential(("norm", LayerNorm(64)), ("fc", Linear(64, 16))));
        Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8);
        using Tensor x = Gaussian(32, 64, 4);
        using (no_grad()) x[TensorIndex.Slice(0, 4), 5] = full(4, 200f);
        IReadOnlyList<CalibrationWarning> warnings = Calibrate(model, null, x);
        CalibrationWarning norm =
            warnings.Single(w => w.Kind == CalibrationWarningKind.CoarseSteps && w.Module == "norm");
        Assert.That(norm.Message, Does.Contain("QLayerNorm 'norm'").And.Contain("input").And.Contain("exclude")
            .And.Contain("QFloat8E4M3Fn"));

        // The same batch with float8 activations: steps follow the magnitude, no coarse-step warning.
        using var fp8 = Seeded.Create(() => Sequential(("norm", LayerNorm(64)), ("fc", Linear(64, 16))));
        Quantizer.Quantize(fp8, weights: QType.QInt8, activations: QType.QFloat8E4M3Fn);
        Assert.That(Calibrate(fp8, null, x).Where(w => w.Kind == CalibrationWarningKind.CoarseSteps), Is.Empty);
    }

    [Test]
    public void AnOutlierDominatedLinearInputSuggestsInt8WeightsWithFloatActivations()
    {
        // A GELU-output-like input: mean |x| ~0.8 with a few values at 200, into a Linear (BERT's FFN output layer).
        using Tensor x = Gaussian(32, 64, 5);
        using (no_grad()) x[TensorIndex.Slice(0, 4), 7] = full(4, 200f);
        using var shifted = Seeded.Create(() => Sequential(("fc2", Linear(64, 16))));
        Quantizer.Quantize(shifted, weights: QType.QInt8, activations: QType.QInt8);
        CalibrationWarning warning = Calibrate(shifted, null, x)
            .Single(w => w.Kind == CalibrationWarningKind.CoarseSteps && w.Module == "fc2");
        Assert.That(warning.Message, Does.Contain("QLinear 'fc2'").And.Contain("input")
            .And.Contain("Quantizer.Quantize(model, QInt8, include: [\"fc2\"])").And.Contain("DynamicActivations"));
    }

    [Test]
    public void AnOutputStreamliningLeavesFloatGivesNoWarning()
    {
        // fc's output feeds only the end of the model: streamlining leaves it float, so its outliers round nowhere.
        using Tensor x = Gaussian(32, 64, 6);
        TorchSharp.Modules.Sequential Model()
        {
            TorchSharp.Modules.Sequential model = Seeded.Create(() => Sequential(("fc", Linear(64, 16))));
            Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8);
            model.eval();
            var fc = (Quanto.Nn.QLinear)model.named_children().Single().module;
            using (no_grad()) fc.FloatWeight![0, 3] = tensor(500f); // output column 0 peaks far above the others
            return model;
        }
        using TorchSharp.Modules.Sequential first = Model();
        Calibration streamlined;
        using (streamlined = new Calibration()) first.forward(x).Dispose();
        Assert.That(streamlined.StreamlinedModules, Does.Contain("fc"));
        Assert.That(streamlined.Warnings.Where(w => w.Message.Contains("output", StringComparison.Ordinal)), Is.Empty);
        // Without streamlining the same output stays quantized, and the warning comes.
        using TorchSharp.Modules.Sequential second = Model();
        Assert.That(Calibrate(second, null, x).Where(w => w.Kind == CalibrationWarningKind.CoarseSteps &&
            w.Message.Contains("output", StringComparison.Ordinal)), Is.Not.Empty);
    }
}
