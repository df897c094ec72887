using NUnit.Framework;
using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Tests.Tensors;

/// <summary>WeightLayout.For (from the shape) against the bytes the quantizer really stores.</summary>
public sealed class WeightLayoutTests
{
    [TestCase(QType.QInt2, new long[] { 33, 96 }, null)]
    [TestCase(QType.QInt4, new long[] { 7, 4, 3, 3 }, null)]
    [TestCase(QType.QInt4, new long[] { 16, 384 }, 64)]
    [TestCase(QType.QInt4, new long[] { 5, 16, 3 }, 32)]
    [TestCase(QType.QInt8, new long[] { 1, 10 }, null)]
    [TestCase(QType.QFloat8E5M2, new long[] { 9, 6, 2 }, null)]
    public void TheLayoutFromTheShapeIsTheStoredOne(QType qtype, long[] shape, int? group)
    {
        using Tensor w = randn(shape);
        using QuantizedWeight q = WeightQuantizer.Quantize(w, qtype, group);
        WeightLayout predicted = WeightLayout.For(qtype, shape, ScalarType.Float32, group);
        Assert.That(predicted.Bytes, Is.EqualTo(q.ByteSize));
        Assert.That(predicted, Is.EqualTo(WeightLayout.Of(q, group)));
    }

    [Test]
    public void BadShapesAreRefused()
    {
        Assert.Throws<ArgumentException>(() => WeightLayout.For(QType.QInt8, [4], ScalarType.Float32));
        Assert.Throws<ArgumentException>(() => WeightLayout.For(QType.QInt8, [0, 4], ScalarType.Float32));
    }
}
