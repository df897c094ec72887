using NUnit.Framework;
using Quanto.Quantization;
using Quanto.Tensors;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Tensors;

/// <summary>Shapes, dtypes, exact byte sizes and device moves of quantized weights.</summary>
public sealed class QuantizedWeightTests
{
    // Bytes worked out by hand for a 256 x 512 fp32 weight (131072 elements):
    // int8/fp8: 131072 data + 256 fp32 scales (1024) = 132096.
    // int4 g128: 1024 groups; packed (512, 128) uint8 = 65536, scale and shift 1024 fp32 each = 8192 -> 73728.
    // int2 g128: packed (256, 128) = 32768 + 8192 = 40960.
    [TestCase(QType.QInt8, 132096)]
    [TestCase(QType.QFloat8E4M3Fn, 132096)]
    [TestCase(QType.QFloat8E5M2, 132096)]
    [TestCase(QType.QInt4, 73728)]
    [TestCase(QType.QInt2, 40960)]
    public void ByteSizeIsExact(QType qtype, long expectedBytes)
    {
        using Tensor w = Reference.RandomNormal(256, 512);
        using QuantizedWeight q = WeightQuantizer.Quantize(w, qtype);
        Assert.Multiple(() =>
        {
            Assert.That(q.ByteSize, Is.EqualTo(expectedBytes));
            Assert.That(q.FloatByteSize, Is.EqualTo(256 * 512 * 4));
            Assert.That(q.Shape.ToArray(), Is.EqualTo(new long[] { 256, 512 }));
            Assert.That(q.DType, Is.EqualTo(ScalarType.Float32));
            Assert.That(q.QType, Is.EqualTo(qtype));
            Assert.That(q.Axis, Is.Zero);
        });
    }

    [Test]
    public void QBitsShapesFollowOptimumQuanto()
    {
        using Tensor w = Reference.RandomNormal(6, 256);
        using var q = (WeightQBitsTensor)WeightQuantizer.Quantize(w, QType.QInt4);
        // (6*256/128, 128) = (12, 128) grouped; packed (6, 128); scale/shift (12, 1).
        Assert.That(q.Packed.shape, Is.EqualTo(new long[] { 6, 128 }));
        Assert.That(q.Scale.shape, Is.EqualTo(new long[] { 12, 1 }));
        Assert.That(q.Shift.shape, Is.EqualTo(new long[] { 12, 1 }));
        Assert.That(q.IsPerChannel, Is.False);
        Assert.That(q.Groups, Is.EqualTo(12));
    }

    [Test]
    public void Conv2dWeightsGroupOverInputChannelsAndKernel()
    {
        using var generator = new Generator(5);
        using Tensor w = randn([8, 16, 3, 3], generator: generator); // rows of 16*3*3 = 144
        using var q = (WeightQBitsTensor)WeightQuantizer.Quantize(w, QType.QInt4);
        Assert.That(q.GroupSize, Is.EqualTo(144), "144 has no divisor among 128/96/64/32 -> per channel");
        Assert.That(q.IsPerChannel, Is.True);
        using Tensor d = q.Dequantize();
        Assert.That(d.shape, Is.EqualTo(new long[] { 8, 16, 3, 3 }));
        Assert.That(Reference.SnrDb(w, d), Is.GreaterThan(15));
    }

    [TestCase(QType.QInt8)]
    [TestCase(QType.QInt4)]
    [TestCase(QType.QFloat8E4M3Fnuz)]
    public void DeviceMoveKeepsValuesQuantized(QType qtype)
    {
        using Tensor w = Reference.RandomNormal(16, 256);
        using QuantizedWeight q = WeightQuantizer.Quantize(w, qtype);
        using QuantizedWeight moved = q.To(CPU);
        Assert.That(moved.GetType(), Is.EqualTo(q.GetType()));
        Assert.That(moved.Device.type, Is.EqualTo(TorchSharp.DeviceType.CPU));
        Assert.That(moved.ByteSize, Is.EqualTo(q.ByteSize));
        using Tensor a = q.Dequantize(), b = moved.Dequantize();
        Assert.That(Reference.Values(b), Is.EqualTo(Reference.Values(a)));
    }

    [Test]
    public void DisposedWeightCannotBeUsed()
    {
        using Tensor w = Reference.RandomNormal(4, 16);
        QuantizedWeight q = WeightQuantizer.Quantize(w, QType.QInt8);
        q.Dispose();
        q.Dispose(); // idempotent
        Assert.That(q.IsDisposed, Is.True);
        Assert.Throws<ObjectDisposedException>(() => q.Dequantize());
    }

    [Test]
    public void ConstructorsRejectInconsistentTensors()
    {
        using Tensor data = zeros([4, 8], ScalarType.Int8);
        using Tensor scale = ones(3, 1);
        var error = Assert.Throws<ArgumentException>(() => new WeightQBytesTensor(QType.QInt8, data, scale))!;
        Assert.That(error.Message, Does.Contain("[3, 1]").And.Contain("[4, 8]"));
        using Tensor floatData = zeros(4, 8);
        using Tensor scale4 = ones(4, 1);
        Assert.Throws<ArgumentException>(() => new WeightQBytesTensor(QType.QInt8, floatData, scale4));
        using Tensor packed = zeros([2, 8], ScalarType.Byte);
        using Tensor groupScale = ones(4, 1);
        Assert.Throws<ArgumentException>(() =>
            new WeightQBitsTensor(QType.QInt4, [4, 8], 8, packed, groupScale, zeros(4, 1, dtype: ScalarType.Int32)));
        Assert.Throws<ArgumentException>(() =>
            new WeightQBitsTensor(QType.QInt4, [4, 8], 3, packed, groupScale, zeros(4, 1)));
    }
}
