using NUnit.Framework;
using Quanto.Quantization;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Quantization;

/// <summary>The clipping search against a brute force over the same ratios, written here.</summary>
public sealed class MseOptimizerTests
{
    private static double GroupError(float[] w, float low, float high, int maxCode)
    {
        float scale = (high - low) / maxCode;
        if (scale == 0) scale = 1;
        float shift = -low;
        double error = 0;
        foreach (float v in w)
        {
            float q = Math.Clamp(MathF.Round((v + shift) / scale, MidpointRounding.ToEven), 0, maxCode);
            error += Math.Pow(Math.Abs(q * scale - shift - v), 2.4);
        }
        return error;
    }

    [TestCase(QType.QInt4)]
    [TestCase(QType.QInt2)]
    public void PicksTheClippingWithTheLeastErrorPerGroup(QType qtype)
    {
        using Tensor raw = Reference.RandomNormal(16, 64, seed: 4);
        using Tensor grouped = raw.pow(3); // heavy tails: clipping pays
        var optimizer = new MseOptimizer(minRatio: 0.5, steps: 11);
        (Tensor scale, Tensor shift) = optimizer.Optimize(grouped, qtype, ShiftMode.Float);
        int maxCode = qtype.Info().MaxCode;
        float[] s = scale.data<float>().ToArray(), h = shift.data<float>().ToArray();
        int clipped = 0;
        for (int g = 0; g < 16; g++)
        {
            float[] w = Reference.Values(grouped[g]).Select(v => (float)v).ToArray();
            float min = w.Min(), max = w.Max();
            double best = Enumerable.Range(0, 11).Select(i => 1 - i * 0.05)
                .Min(r => GroupError(w, (float)(min * r), (float)(max * r), maxCode));
            double chosen = GroupError(w, -h[g], -h[g] + s[g] * maxCode, maxCode);
            Assert.That(chosen, Is.EqualTo(best).Within(best * 1e-4), $"group {g}");
            Assert.That(chosen, Is.LessThanOrEqualTo(GroupError(w, min, max, maxCode) * (1 + 1e-6)));
            if (s[g] < (max - min) / maxCode * 0.999) clipped++;
        }
        Assert.That(clipped, Is.GreaterThan(0), "some groups clip");
        scale.Dispose();
        shift.Dispose();
    }

    [Test]
    public void QuantizesThroughTheOrdinaryLayoutAndZeroPoints()
    {
        using Tensor weight = Reference.RandomNormal(8, 256, seed: 5);
        using var q = (Quanto.Tensors.WeightQBitsTensor)WeightQuantizer.Quantize(weight, QType.QInt4, 64,
            new MseOptimizer(), ShiftMode.ZeroPoint);
        Assert.That(q.HasZeroPoint && q.GroupSize == 64, Is.True);
        using Tensor plain = WeightQuantizer.Quantize(weight, QType.QInt4, 64, new MaxOptimizer()).Dequantize();
        using Tensor searched = q.Dequantize();
        Assert.That(Reference.SnrDb(weight, searched), Is.GreaterThan(Reference.SnrDb(weight, plain)));
    }
}
