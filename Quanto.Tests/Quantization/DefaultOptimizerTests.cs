using NUnit.Framework;
using Quanto.Quantization;
using Quanto.Tensors;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Quantization;

/// <summary>
/// The 2/4-bit default is HQQ (measured better than optimum-quanto's Max on real weights); Max stays one argument
/// away and gives optimum-quanto's formulas. The reference is a double-precision re-implementation of
/// optimum-quanto's hqq_optimizer.py written here (scale from min/max, then shift updates from the lp-shrunk error,
/// stopping at the first step whose mean |W - Wq| does not improve).
/// </summary>
public sealed class DefaultOptimizerTests
{
    [Test]
    public void TheDefaultIsHqqForTwoAndFourBitsWithAFloatShiftAndOtherwiseAsOptimumQuanto()
    {
        Assert.That(Optimizer.DefaultFor(QType.QInt4), Is.InstanceOf<HqqOptimizer>());
        Assert.That(Optimizer.DefaultFor(QType.QInt2), Is.InstanceOf<HqqOptimizer>());
        Assert.That(Optimizer.DefaultFor(QType.QInt4, ShiftMode.ZeroPoint), Is.InstanceOf<MaxOptimizer>());
        Assert.That(Optimizer.DefaultFor(QType.QInt8), Is.InstanceOf<AbsmaxOptimizer>());
        Assert.That(Optimizer.DefaultFor(QType.QFloat8E4M3Fn), Is.InstanceOf<AbsmaxOptimizer>());
    }

    [TestCase(QType.QInt4)]
    [TestCase(QType.QInt2)]
    public void DefaultWeightsFollowTheHqqReference(QType qtype)
    {
        using Tensor w = Reference.RandomNormal(8, 64, seed: 11);
        using var q = (WeightQBitsTensor)WeightQuantizer.Quantize(w, qtype, groupSize: 32);
        (double[] scale, double[] shift) = HqqReference(Reference.Values(w), 32, (1 << qtype.Info().Bits) - 1);
        Assert.That(Reference.Values(q.Scale), Is.EqualTo(scale).Within(1e-6), "HQQ keeps Max's scale");
        Assert.That(Reference.Values(q.Shift), Is.EqualTo(shift).Within(1e-4), "refined shift");
        double[] max = Reference.Values(w).Chunk(32).Select(g => -g.Min()).ToArray();
        Assert.That(Reference.Values(q.Shift), Is.Not.EqualTo(max).Within(1e-4), "not Max's shift");
    }

    [Test]
    public void ExplicitMaxGivesOptimumQuantosMinMaxCodes()
    {
        // Two groups of 16, each a ramp of 16 steps: Max's scale = (max - min) / 15 is the step, shift = -min, and
        // the codes are 0..15 exactly.
        float[] ramps = [.. Enumerable.Range(0, 16).Select(k => k * 0.5f - 2), .. Enumerable.Range(0, 16)
            .Select(k => k * 0.25f + 1)];
        using Tensor w = tensor(ramps, [2, 16]);
        using var q = (WeightQBitsTensor)WeightQuantizer.Quantize(w, QType.QInt4, 16, new MaxOptimizer());
        Assert.That(q.Scale.data<float>().ToArray(), Is.EqualTo(new[] { 0.5f, 0.25f }));
        Assert.That(q.Shift.data<float>().ToArray(), Is.EqualTo(new[] { 2f, -1f }));
        using Tensor codes = q.UnpackCodes();
        Assert.That(codes.data<byte>().ToArray(), Is.EqualTo(Enumerable.Range(0, 16).Concat(Enumerable.Range(0, 16))
            .Select(k => (byte)k).ToArray()));
    }

    [Test]
    public void QuantizeWithoutAnOptimizerUsesHqqAndStillWritesScaleAndShift()
    {
        var model = Sequential(("fc", Linear(64, 8)));
        using Tensor weight = model.parameters().First().detach().clone();
        Quantizer.Quantize(model, QType.QInt4, groupSize: 32);
        Quantizer.Freeze(model);
        var q = (WeightQBitsTensor)Quantizer.QuantizedModules(model).Single().QuantizedWeight!;
        (double[] scale, double[] shift) = HqqReference(Reference.Values(weight), 32, 15);
        Assert.That(q.HasZeroPoint, Is.False, "an ordinary float shift, as optimum-quanto stores it");
        Assert.That(Reference.Values(q.Scale), Is.EqualTo(scale).Within(1e-6));
        Assert.That(Reference.Values(q.Shift), Is.EqualTo(shift).Within(1e-4));
    }

    /// <summary>optimum-quanto's HQQ in double precision (lp 0.7, beta 10, kappa 1.01, 20 iterations), the stopping
    /// test over all groups at once (the quantizer's one row block for weights this small).</summary>
    private static (double[] Scale, double[] Shift) HqqReference(double[] w, int group, int maxCode)
    {
        int groups = w.Length / group;
        var scale = new double[groups];
        var shift = new double[groups];
        for (int g = 0; g < groups; g++)
        {
            ArraySegment<double> values = new(w, g * group, group);
            double range = values.Max() - values.Min();
            scale[g] = range == 0 ? 1 : (double)(float)(range / maxCode);
            shift[g] = -values.Min();
        }
        var codes = new double[w.Length];
        double Error(double[] s)
        {
            double total = 0;
            for (int i = 0; i < w.Length; i++)
            {
                int g = i / group;
                codes[i] = Math.Clamp(Math.Round((w[i] + s[g]) / scale[g], MidpointRounding.ToEven), 0, maxCode);
                total += Math.Abs(w[i] - (codes[i] * scale[g] - s[g]));
            }
            return total / w.Length;
        }
        double best = Error(shift), beta = 10;
        double[] bestShift = shift;
        for (int iteration = 0; iteration < 20; iteration++)
        {
            var next = new double[groups];
            for (int i = 0; i < w.Length; i++)
            {
                int g = i / group;
                double e = w[i] - (codes[i] * scale[g] - shift[g]);
                double shrunk = Math.Sign(e) * Math.Max(0, Math.Abs(e) - Math.Pow(Math.Abs(e) + 1e-8, -0.3) / beta);
                next[g] += (codes[i] * scale[g] - w[i] + shrunk) / group;
            }
            beta *= 1.01;
            double error = Error(next);
            if (error >= best) break;
            (best, bestShift, shift) = (error, next, next);
        }
        return (scale, bestShift);
    }
}
