using NUnit.Framework;
using Quanto.Kernels;
using Quanto.Kernels.Cpu;
using Quanto.Quantization;
using Quanto.Tensors;
using static Quanto.Tests.Kernels.Cpu.CpuKernelTestData;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Cpu;

/// <summary>The backend contract: what runs where, layouts, float8 decoding, errors.</summary>
[TestFixture]
public class CpuKernelsContractTests
{
    [Test]
    public void CanRun_CpuFloat32AndBFloat16_SupportedQTypesOnly()
    {
        using QuantizedWeight int4 = Weight(new CpuWeightCase(QType.QInt4), 4, 128, 1);
        Assert.Multiple(() =>
        {
            Assert.That(CpuKernels.Instance.CanRun(int4, ScalarType.Float32, CPU), Is.True);
            Assert.That(CpuKernels.Instance.CanRun(int4, ScalarType.BFloat16, CPU), Is.True);
            Assert.That(CpuKernels.Instance.CanRun(int4, ScalarType.Float16, CPU), Is.False);
            Assert.That(CpuKernels.Instance.CanRun(int4, ScalarType.Float32, new Device(TorchSharp.DeviceType.CUDA, 0)), Is.False);
        });
    }

    [TestCase(QType.QInt8, 8)]
    [TestCase(QType.QFloat8E4M3Fn, 8)]
    [TestCase(QType.QInt4, 4)]
    [TestCase(QType.QInt2, 2)]
    public void PreparedLayout_HoldsTheDocumentedBitsPerWeight(QType qtype, int bits)
    {
        using QuantizedWeight weight = Weight(new CpuWeightCase(qtype), 3, 256, 2);
        using var prepared = (CpuPreparedWeight)CpuKernels.Instance.Prepare(weight);
        Assert.That(prepared.RowBytes * 8L, Is.EqualTo((long)prepared.PaddedK * bits));
        Assert.That(prepared.BlockBytes * 8, Is.EqualTo(prepared.BlockWeights * bits));
        Assert.That(prepared.PaddedK, Is.EqualTo(256), "256 inputs fill whole blocks: no padding");
    }

    [TestCase(QType.QFloat8E4M3Fn, Float8Format.E4M3Fn)]
    [TestCase(QType.QFloat8E5M2, Float8Format.E5M2)]
    [TestCase(QType.QFloat8E4M3Fnuz, Float8Format.E4M3Fnuz)]
    public void Float8Decode_EveryFiniteCode_MatchesTheCodecTable(QType qtype, Float8Format format)
    {
        // One weight row per code, scale 1, x = ones: y[n] = decode(code n) exactly (a single product, no sum error).
        using var scope = NewDisposeScope();
        float[] table = Float8.DecodeTable(format).ToArray();
        var codes = Enumerable.Range(0, 256).Where(c => float.IsFinite(table[c])).Select(c => (byte)c).ToArray();
        Tensor data = tensor(codes, [codes.Length, 1]).repeat(1, 64).contiguous();
        Tensor stored = empty([codes.Length, 64], qtype.Info().Storage);
        stored.bytes = data.bytes;
        using var weight = new WeightQBytesTensor(qtype, stored, ones(codes.Length, 1));
        Tensor x = zeros(1, 64);
        x[0, 0] = tensor(1f);
        foreach (CpuKernelPath path in CpuFeatures.Supported)
        {
            var kernels = new CpuKernels(path);
            using PreparedWeight prepared = kernels.Prepare(weight);
            float[] y = kernels.Linear(x, prepared, null).data<float>().ToArray();
            for (int i = 0; i < codes.Length; i++)
                Assert.That(y[i], Is.EqualTo(table[codes[i]]), $"{path}: code 0x{codes[i]:X2}");
        }
    }

    [Test]
    public void Linear_WrongInputShape_ThrowsNamingBothShapes()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(QType.QInt8), 4, 64, 3);
        using PreparedWeight prepared = CpuKernels.Instance.Prepare(weight);
        var e = Assert.Throws<ArgumentException>(() => CpuKernels.Instance.Linear(zeros(2, 63), prepared, null));
        Assert.That(e!.Message, Does.Contain("[2, 63]").And.Contain("[4, 64]"));
    }

    [Test]
    public void Linear_WeightPreparedByAnotherBackend_Throws()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(QType.QInt8), 4, 64, 3);
        using PreparedWeight torchPrepared = TorchKernels.Instance.Prepare(weight);
        Assert.Throws<ArgumentException>(() => CpuKernels.Instance.Linear(zeros(1, 64), torchPrepared, null));
    }

    [Test]
    public void Name_SaysThePath()
    {
        Assert.That(new CpuKernels(CpuKernelPath.Scalar).Name, Is.EqualTo("cpu-scalar"));
        Assert.That(CpuKernels.Instance.Path, Is.EqualTo(CpuFeatures.Best));
    }
}
