using NUnit.Framework;
using Quanto.Kernels;
using Quanto.Kernels.Ilgpu.Kernels;
using Quanto.Kernels.Ilgpu.Layout;
using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Ilgpu;

/// <summary>The kernel layout made at Prepare (hand-computed bytes), and each kernel's plain C# reference on that
/// layout against TorchSharp's float math.</summary>
[TestFixture]
public sealed class KernelLayoutTests
{
    [Test]
    public void Int4RowsAreConsecutiveLowNibbleFirstAndPaddedToAChunk()
    {
        using var scope = NewDisposeScope();
        // Two rows of 8 codes, one group each; packed canonically (row i*r + j in plane i of packed row j).
        byte[] codes = [1, 2, 3, 4, 5, 6, 7, 8, 15, 14, 13, 12, 11, 10, 9, 0];
        var packed = new byte[Packing.PackedRows(2, 4) * 8];
        Packing.Pack(codes, 2, 8, 4, packed);
        using var weight = new WeightQBitsTensor(QType.QInt4, [2, 8], 8, tensor(packed, [1, 8]),
            tensor(new[] { 0.5f, 2f }, [2, 1]), tensor(new[] { 1f, 3f }, [2, 1]));

        KernelLayout layout = KernelLayout.From(weight);

        Assert.That(layout.Shape.ChunksPerRow, Is.EqualTo(1));
        Assert.That(layout.Shape.PaddedK, Is.EqualTo(32));
        Assert.That(layout.Codes, Has.Length.EqualTo(32));
        Assert.That(layout.Codes[..4], Is.EqualTo(new byte[] { 0x21, 0x43, 0x65, 0x87 }));
        Assert.That(layout.Codes[4..16], Is.All.EqualTo(0));
        Assert.That(layout.Codes[16..20], Is.EqualTo(new byte[] { 0xEF, 0xCD, 0xAB, 0x09 }));
        Assert.That(layout.Scale, Is.EqualTo(new[] { 0.5f, 2f }));
        Assert.That(layout.Shift, Is.EqualTo(new[] { 1f, 3f }));
    }

    [Test]
    public void ZeroPointBecomesAFloatShift()
    {
        using var scope = NewDisposeScope();
        var packed = new byte[Packing.PackedRows(1, 2) * 8];
        Packing.Pack([0, 1, 2, 3, 3, 2, 1, 0], 1, 8, 2, packed);
        using var weight = new WeightQBitsTensor(QType.QInt2, [1, 8], 8, tensor(packed, [1, 8]),
            tensor(new[] { 0.25f }, [1, 1]), tensor(new byte[] { 2 }, [1, 1]));

        KernelLayout layout = KernelLayout.From(weight);

        // (q - 2) * 0.25 == q * 0.25 - 0.5
        Assert.That(layout.Shift, Is.EqualTo(new[] { 0.5f }));
        Assert.That(layout.Codes[..2], Is.EqualTo(new byte[] { 0b11_10_01_00, 0b00_01_10_11 }));
    }

    [Test]
    public void RefusesWhatNoKernelRuns()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight fnuz = WeightQuantizer.Quantize(IlgpuTestSupport.Random(1, 4, 16), QType.QFloat8E4M3Fnuz);
        Assert.That(KernelLayout.Unsupported(fnuz), Does.Contain("qfloat8_e4m3fnuz"));
        Assert.Throws<NotSupportedException>(() => KernelLayout.From(fnuz));

        // 2 rows of 48 quantized in groups of 32: groups straddle rows.
        var packed = new byte[Packing.PackedRows(3, 4) * 32];
        using var straddling = new WeightQBitsTensor(QType.QInt4, [2, 48], 32, tensor(packed, [2, 32]),
            ones(3, 1), zeros(3, 1));
        Assert.That(KernelLayout.Unsupported(straddling), Does.Contain("group size 32 does not divide in_features 48"));
        Assert.That(IlgpuTestSupport.Cpu.CanRun(straddling, ScalarType.Float32, CPU), Is.False);
    }

    [TestCase(QType.QInt8)]
    [TestCase(QType.QFloat8E4M3Fn)]
    [TestCase(QType.QFloat8E5M2)]
    public void ByteKernelReferenceMatchesTorch(QType qtype)
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight qw = WeightQuantizer.Quantize(IlgpuTestSupport.Random(2, 5, 37), qtype);
        Tensor x = IlgpuTestSupport.Random(3, 3, 37);
        KernelLayout layout = KernelLayout.From(qw);
        var shape = layout.Shape with { M = 3 };
        var y = new float[15];
        float[] xs = x.data<float>().ToArray();

        switch (qtype)
        {
            case QType.QInt8: ByteWeightKernel.Reference<Int8Decoder>(xs, layout.Codes, layout.Scale, y, shape); break;
            case QType.QFloat8E4M3Fn:
                ByteWeightKernel.Reference<Float8E4M3FnDecoder>(xs, layout.Codes, layout.Scale, y, shape); break;
            default: ByteWeightKernel.Reference<Float8E5M2Decoder>(xs, layout.Codes, layout.Scale, y, shape); break;
        }

        using PreparedWeight reference = TorchKernels.Instance.Prepare(qw);
        Assert.That(IlgpuTestSupport.RelativeError(tensor(y, [3, 5]), TorchKernels.Instance.Linear(x, reference, null)),
            Is.LessThanOrEqualTo(1e-5));
    }

    [TestCase(QType.QInt4, 8)]
    [TestCase(QType.QInt2, 32)]
    public void PackedKernelReferenceMatchesTorch(QType qtype, int group)
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight qw = WeightQuantizer.Quantize(IlgpuTestSupport.Random(4, 5, 96), qtype, group);
        Tensor x = IlgpuTestSupport.Random(5, 2, 96);
        KernelLayout layout = KernelLayout.From(qw);
        var y = new float[10];

        PackedWeightKernel.Reference(layout.Bits, x.data<float>().ToArray(), layout.Codes, layout.Scale, layout.Shift, y,
            layout.Shape with { M = 2 });

        using PreparedWeight reference = TorchKernels.Instance.Prepare(qw);
        Assert.That(IlgpuTestSupport.RelativeError(tensor(y, [2, 5]), TorchKernels.Instance.Linear(x, reference, null)),
            Is.LessThanOrEqualTo(1e-5));
    }

    [Test]
    public void W8A8ReferenceMatchesTorchInt64()
    {
        using var scope = NewDisposeScope();
        Tensor x = randint(-128, 128, [3, 50], dtype: ScalarType.Int8);
        Tensor w = randint(-128, 128, [4, 50], dtype: ScalarType.Int8);
        var acc = new int[12];

        W8A8Kernel.ReferenceInt32(x.data<sbyte>().ToArray(), w.data<sbyte>().ToArray(), acc, 3, 4, 50);

        long[] expected = x.to(ScalarType.Int64).mm(w.to(ScalarType.Int64).t()).data<long>().ToArray();
        Assert.That(acc.Select(v => (long)v), Is.EqualTo(expected));
    }
}
