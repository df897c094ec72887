using NUnit.Framework;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Nn;

/// <summary>Quantized models against their float selves (assert_similar: |1 - cos| &lt;= atol + 1e-5).</summary>
public sealed class ModelAccuracyTests
{
    /// <summary>optimum-quanto's own MLP test, with its bounds: MLP(32 -> 128 -> 128 -> 10) ending in softmax, one
    /// uniform input, activations calibrated on that input.</summary>
    public static IEnumerable<TestCaseData> OptimumQuantoConfigs() => Configs(w8: 1e-6, w4: 1e-4, e4m3fnuz: true);

    /// <summary>The issue's models on raw logits. Activation bounds as the issue sets them; weight-only bounds sit at
    /// the weight-quantization floor (uniform-initialised layers: |1 - cos| ~ 8e-6 per int8 layer, ~2e-3 per int4
    /// group-128 layer), since logits carry the weight error undamped.</summary>
    public static IEnumerable<TestCaseData> LogitConfigs() => Configs(w8: 2e-5, w4: 5e-3, e4m3fnuz: false);

    [TestCaseSource(nameof(OptimumQuantoConfigs))]
    public void OptimumQuantoMlp(QType weights, QType? activations, double atol, bool frozen) =>
        Check(() => new SoftmaxMlp(), [1, 32], weights, activations, atol, frozen);

    [TestCaseSource(nameof(LogitConfigs))]
    public void Mlp784(QType weights, QType? activations, double atol, bool frozen) =>
        Check(() => new Mlp(), [32, 784], weights, activations, atol, frozen);

    [TestCaseSource(nameof(LogitConfigs))]
    public void SmallCnn(QType weights, QType? activations, double atol, bool frozen) =>
        Check(() => new Cnn(), [8, 1, 28, 28], weights, activations, atol, frozen);

    [Test]
    public void AttentionBlockW8A8AfterCalibration() =>
        Check(() => new Attention(), [2, 16, 64], QType.QInt8, QType.QInt8, 1e-3, frozen: true);

    private static IEnumerable<TestCaseData> Configs(double w8, double w4, bool e4m3fnuz)
    {
        foreach (bool frozen in new[] { false, true })
        {
            string mode = frozen ? "frozen" : "dynamic";
            yield return new TestCaseData(QType.QInt8, null, w8, frozen).SetArgDisplayNames("w8", mode);
            yield return new TestCaseData(QType.QInt4, null, w4, frozen).SetArgDisplayNames("w4", mode);
            yield return new TestCaseData(QType.QInt8, QType.QInt8, 1e-3, frozen).SetArgDisplayNames("w8a8", mode);
            yield return new TestCaseData(QType.QInt8, QType.QFloat8E4M3Fn, 1e-3, frozen).SetArgDisplayNames("w8a-e4m3fn", mode);
            if (e4m3fnuz)
                yield return new TestCaseData(QType.QInt8, QType.QFloat8E4M3Fnuz, 1e-3, frozen).SetArgDisplayNames("w8a-e4m3fnuz", mode);
            yield return new TestCaseData(QType.QInt8, QType.QFloat8E5M2, 1e-2, frozen).SetArgDisplayNames("w8a-e5m2", mode);
        }
    }

    private static void Check(Func<Module<Tensor, Tensor>> factory, long[] inputShape, QType weights, QType? activations,
        double atol, bool frozen)
    {
        using var model = Seeded.Create(factory);
        model.eval();
        using Tensor x = Seeded.Uniform(inputShape);
        using Tensor expected = model.forward(x);

        Quantizer.Quantize(model, weights: weights, activations: activations);
        if (frozen) Quantizer.Freeze(model);
        if (activations is not null)
        {
            // As optimum-quanto's tests: calibrate on the evaluated batch.
            using var calibration = new Calibration();
            model.forward(x).Dispose();
        }
        using Tensor actual = model.forward(x);
        Similarity.AssertSimilar(expected, actual, atol,
            $"{model.GetName()} w:{weights.QuantoName()} a:{activations?.QuantoName() ?? "none"} frozen:{frozen}");
    }
}
