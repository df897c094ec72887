using NUnit.Framework;
using Quanto.Quantization;
using Quanto.Tensors;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Quantization;

/// <summary>Quantization error on random weights, against optimum-quanto's own test criteria (or stricter).</summary>
public sealed class AccuracyTests
{
    // optimum-quanto's cosine criteria (|1 - cos| <= atol: int8 1e-5 (stricter than its fp32 default), fp8 5e-3,
    // int4 3e-3, int2 5e-2), on the distribution its tests use them on: random_tensor = uniform [-1, 1].
    [TestCase(QType.QInt8, 1e-5)]
    [TestCase(QType.QFloat8E4M3Fn, 5e-3)]
    [TestCase(QType.QFloat8E5M2, 5e-3)]
    [TestCase(QType.QFloat8E4M3Fnuz, 5e-3)]
    [TestCase(QType.QInt4, 3e-3)]
    [TestCase(QType.QInt2, 5e-2)]
    public void OptimumQuantoCosineCriteria(QType qtype, double maxCosineError)
    {
        using var generator = new TorchSharp.torch.Generator(7);
        using Tensor w = rand([256, 512], generator: generator).mul(2).sub(1);
        (double cosineError, double snr) = Measure(w, qtype);
        TestContext.Out.WriteLine($"{qtype.QuantoName()} uniform: |1 - cos| = {cosineError:E2}, SNR = {snr:F1} dB");
        Assert.That(cosineError, Is.LessThanOrEqualTo(maxCosineError));
    }

    // Gaussian weights have heavier tails than uniform ones, so the step is larger at equal bits: for them the issue's
    // SNR floors (int8 38 dB, int4 g128 17 dB) apply, and 1 - cos ~ 10^(-SNR/10) / 2. Float8 and int2 floors sit a
    // few dB under their theoretical values (3 mantissa bits ~31 dB, 2 ~25 dB, 4 levels ~6 dB).
    [TestCase(QType.QInt8, 38.0)]
    [TestCase(QType.QFloat8E4M3Fn, 29.0)]
    [TestCase(QType.QFloat8E5M2, 23.0)]
    [TestCase(QType.QFloat8E4M3Fnuz, 29.0)]
    [TestCase(QType.QInt4, 17.0)]
    [TestCase(QType.QInt2, 5.0)]
    public void RandomNormalWeightsSnr(QType qtype, double minSnrDb)
    {
        using Tensor w = Reference.RandomNormal(256, 512, seed: 1);
        (double cosineError, double snr) = Measure(w, qtype);
        TestContext.Out.WriteLine($"{qtype.QuantoName()} normal: |1 - cos| = {cosineError:E2}, SNR = {snr:F1} dB");
        Assert.That(snr, Is.GreaterThanOrEqualTo(minSnrDb));
        Assert.That(cosineError, Is.LessThanOrEqualTo(Math.Pow(10, -minSnrDb / 10) / 2 * 1.05));
    }

    [TestCase(QType.QInt8)]
    [TestCase(QType.QFloat8E4M3Fn)]
    [TestCase(QType.QInt4)]
    public void BFloat16WeightsKeepTheirDtype(QType qtype)
    {
        using Tensor w = Reference.RandomNormal(64, 256, seed: 2, dtype: ScalarType.BFloat16);
        using QuantizedWeight q = WeightQuantizer.Quantize(w, qtype);
        using Tensor d = q.Dequantize();
        Assert.That(d.dtype, Is.EqualTo(ScalarType.BFloat16));
        Assert.That(q.DType, Is.EqualTo(ScalarType.BFloat16));
        // bf16 weights add their own rounding (~52 dB) on top of the quantization error measured in fp32.
        using Tensor w32 = w.to(ScalarType.Float32);
        (double cosineError32, _) = Measure(w32, qtype);
        Assert.That(Reference.CosineError(w, d), Is.LessThanOrEqualTo(cosineError32 * 1.1 + 1e-5));
    }

    [Test]
    public void HqqErrorIsNoWorseThanMax()
    {
        using Tensor w = Reference.RandomNormal(256, 512, seed: 3);
        foreach (QType qtype in new[] { QType.QInt4, QType.QInt2 })
        {
            using QuantizedWeight max = WeightQuantizer.Quantize(w, qtype, optimizer: new MaxOptimizer());
            using QuantizedWeight hqq = WeightQuantizer.Quantize(w, qtype, optimizer: new HqqOptimizer());
            using Tensor dMax = max.Dequantize(), dHqq = hqq.Dequantize();
            double eMax = Reference.MeanAbsError(w, dMax), eHqq = Reference.MeanAbsError(w, dHqq);
            TestContext.Out.WriteLine($"{qtype.QuantoName()}: mean |W - Wq| max {eMax:E4}, hqq {eHqq:E4}");
            Assert.That(eHqq, Is.LessThanOrEqualTo(eMax), qtype.QuantoName());
        }
    }

    [TestCase(ScalarType.BFloat16)]
    [TestCase(ScalarType.Float16)]
    public void HqqWorksOnHalfPrecisionWeights(ScalarType dtype)
    {
        using Tensor w = Reference.RandomNormal(64, 256, seed: 4, dtype: dtype);
        using QuantizedWeight max = WeightQuantizer.Quantize(w, QType.QInt4, optimizer: new MaxOptimizer());
        using QuantizedWeight hqq = WeightQuantizer.Quantize(w, QType.QInt4, optimizer: new HqqOptimizer());
        using Tensor dMax = max.Dequantize(), dHqq = hqq.Dequantize();
        Assert.That(hqq.DType, Is.EqualTo(dtype));
        Assert.That(Reference.MeanAbsError(w, dHqq), Is.LessThanOrEqualTo(Reference.MeanAbsError(w, dMax)));
    }

    [Test]
    public void Int8RampSurvivesExactly()
    {
        // Symmetric absmax never produces -128, so the ramp is -127..127 times a power-of-two step.
        float[] ramp = Enumerable.Range(-127, 255).Select(k => k * 0.0625f).ToArray();
        using Tensor w = tensor(ramp.Concat(ramp.Select(v => v * 4)).ToArray(), [2, 255]);
        AssertExact(w, QType.QInt8);
    }

    [TestCase(QType.QInt4)]
    [TestCase(QType.QInt2)]
    public void AffineRampOverAllCodesSurvivesExactly(QType qtype)
    {
        int codes = qtype.Info().MaxCode + 1;
        // Each group of 8 holds the codes 0..2^bits-1 (repeated) as (k - codes/2) * 0.5: scale 0.5, shift codes/4.
        float[] row = Enumerable.Range(0, 32).Select(i => (i % codes - codes / 2) * 0.5f).ToArray();
        using Tensor w = tensor(row.Concat(row.Select(v => v * 2)).ToArray(), [2, 32]);
        AssertExact(w, qtype, groupSize: codes == 4 ? 8 : 16);
    }

    [TestCase(QType.QFloat8E4M3Fn)]
    [TestCase(QType.QFloat8E5M2)]
    [TestCase(QType.QFloat8E4M3Fnuz)]
    public void Float8EveryFiniteCodeSurvivesExactly(QType qtype)
    {
        float[] values = Float8.DecodeTable(qtype.Info().Float8!.Value).ToArray().Where(float.IsFinite).ToArray();
        using Tensor w = tensor(values, [1, values.Length]);
        AssertExact(w, qtype);
    }

    [Test]
    public void ZeroRowsAndGroupsGiveZerosNotNaN()
    {
        using Tensor w = zeros(4, 256);
        w[1] = ones(256); // a constant non-zero row: zero range, exact through the shift
        foreach (QType qtype in QTypes.All)
        {
            using QuantizedWeight q = WeightQuantizer.Quantize(w, qtype);
            using Tensor d = q.Dequantize();
            Assert.That(d.isfinite().all().item<bool>(), Is.True, qtype.QuantoName());
            Assert.That(Reference.Values(d), Is.EqualTo(Reference.Values(w)), qtype.QuantoName());
        }
    }

    private static (double CosineError, double SnrDb) Measure(Tensor w, QType qtype)
    {
        using QuantizedWeight q = WeightQuantizer.Quantize(w, qtype);
        using Tensor d = q.Dequantize();
        if (q is WeightQBitsTensor bits) Assert.That(bits.GroupSize, Is.EqualTo(128));
        return (Reference.CosineError(w, d), Reference.SnrDb(w, d));
    }

    private static void AssertExact(Tensor w, QType qtype, int? groupSize = null)
    {
        using QuantizedWeight q = WeightQuantizer.Quantize(w, qtype, groupSize);
        using Tensor d = q.Dequantize();
        Assert.That(Reference.Values(d), Is.EqualTo(Reference.Values(w)), qtype.QuantoName());
    }
}
