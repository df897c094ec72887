using NUnit.Framework;
using Quanto.Tensors;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests;

/// <summary>The report's per-layer group size, bits per weight and bytes, against hand-computed layouts.</summary>
public sealed class QuantizationReportTests
{
    // (in, out, qtype) -> group actually used, bytes of codes + fp32 scales (+ fp32 shifts), bits per weight.
    // qint4 256 -> 128: 128 groups, 64 packed rows of 128 bytes + 128 * 8 = 9,216 bytes, 4.5 bits.
    // qint4 160 -> 32 (fallback): 50 groups, 25 packed rows of 32 + 50 * 8 = 1,200 bytes, 6 bits.
    // qint2 100 <= 128 -> per channel: 10 groups, ceil(10 / 4) = 3 packed rows of 100 + 10 * 8 = 380 bytes.
    // qint4 200 (no 128, 96, 64, 32 divides) -> per channel: 8 groups, 4 packed rows of 200 + 8 * 8 = 864 bytes.
    // qint8 64: 2,048 codes + 32 * 4 = 2,176 bytes, 8.5 bits.
    [TestCase(256, 64, QType.QInt4, 128, 9216, 4.5, "group 128")]
    [TestCase(160, 10, QType.QInt4, 32, 1200, 6.0, "group 32 (fallback from 128)")]
    [TestCase(100, 10, QType.QInt2, 100, 380, 3.04, "per channel (rows of 100)")]
    [TestCase(200, 8, QType.QInt4, 200, 864, 4.32, "per channel (rows of 200)")]
    [TestCase(64, 32, QType.QInt8, null, 2176, 8.5, "qint8, per channel, 8.50 bits/weight, 2,176 bytes")]
    public void EachLayerGetsItsGroupBitsAndBytes(int inputs, int outputs, QType qtype, int? group, long bytes,
        double bits, string text)
    {
        using var model = Sequential(("fc", Linear(inputs, outputs)));
        QuantizationReport report = Quantizer.Quantize(model, weights: qtype);
        WeightLayout layout = report.Quantized.Single().Layout!;
        Assert.That(layout.GroupSize, Is.EqualTo(group));
        Assert.That(layout.Bytes, Is.EqualTo(bytes));
        Assert.That(layout.BitsPerWeight, Is.EqualTo(bits).Within(1e-12));
        Assert.That(layout.FloatBytes, Is.EqualTo(inputs * outputs * 4L));
        Assert.That(report.ToString(), Does.Contain(text));

        // Frozen, the stored weight has exactly that layout.
        Quantizer.Freeze(model);
        QuantizedModuleInfo frozen = QuantizationReport.For(Quantizer.QuantizedModules(model)).Quantized.Single();
        Assert.That(frozen.Layout, Is.EqualTo(layout));
        Assert.That(frozen.OriginalType, Is.EqualTo("Linear"));
    }

    [Test]
    public void ScalesInTheWeightsDtypeAndConvolutionRows()
    {
        using var model = Sequential(("fc", Linear(256, 64)), ("conv", Conv2d(3, 8, 3)));
        model.to(ScalarType.BFloat16);
        QuantizationReport report = Quantizer.Quantize(model, weights: QType.QInt4);
        // bf16 scale and shift: 8,192 + 128 * 2 * 2 = 8,704 bytes (4.25 bits); conv rows of 27: per channel,
        // 4 packed rows of 27 + 8 * 2 * 2 = 140 bytes.
        Assert.That(report.Quantized.Select(q => q.Layout!.Bytes), Is.EqualTo(new long[] { 8704, 140 }));
        Assert.That(report.Quantized[0].Layout!.BitsPerWeight, Is.EqualTo(4.25));
        Assert.That(report.QuantizedBytes, Is.EqualTo(8704 + 140));
        Assert.That(report.FloatBytes, Is.EqualTo((256 * 64 + 8 * 27) * 2));
        Assert.That(report.ToString(), Does.Contain("Quantized weights: 33,200 -> 8,844 bytes (3.75x smaller)"));
    }

    [Test]
    public void ActivationOnlyLayersHaveNoLayout()
    {
        using var model = Sequential(("norm", LayerNorm(4)), ("fc", Linear(4, 2)));
        QuantizationReport report = Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8);
        Assert.That(report.Quantized.Select(q => q.Layout is null), Is.EqualTo(new[] { true, false }));
        Assert.That(report.ToString(), Does.Contain("norm: LayerNorm -> weights none, activations qint8"));
    }
}
