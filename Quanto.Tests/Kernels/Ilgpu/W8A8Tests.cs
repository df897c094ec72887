using NUnit.Framework;
using Quanto.Kernels;
using Quanto.Kernels.Ilgpu.Accelerators;
using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Ilgpu;

/// <summary>
/// W8A8 on every ILGPU accelerator present: the int32 sums must be exact. The output is acc * xScale * wScale[n] in
/// float32; the reference forms the same products from an int64 matmul (exact for these K), so equality is exact.
/// </summary>
[TestFixture]
public sealed class W8A8Tests
{
    private static IEnumerable<TestCaseData> Cases() =>
        from kind in IlgpuTestSupport.Kinds
        from s in new[] { (M: 1, N: 7, K: 40), (M: 5, N: 9, K: 200), (M: 2, N: 5, K: 2100) }
        select new TestCaseData(kind, s.M, s.N, s.K).SetName($"{kind}_W8A8_M{s.M}_N{s.N}_K{s.K}");

    [TestCaseSource(nameof(Cases))]
    public void IntegerSumsAreExact(AcceleratorKind kind, int m, int n, int k)
    {
        var backend = IlgpuTestSupport.Backend(kind);
        using var scope = NewDisposeScope();
        using QuantizedWeight qw = WeightQuantizer.Quantize(IlgpuTestSupport.Random(11, n, k), QType.QInt8);
        var w8 = (WeightQBytesTensor)qw;
        // Extreme codes included: -128 * -128 and 127 * -128 must survive the byte sign-extension.
        Tensor codes = IlgpuTestSupport.Random(12, m, k).mul(60).clamp(-128, 127).round().to(ScalarType.Int8);
        codes[0, 0] = tensor((sbyte)-128);
        Tensor xScale = tensor(0.037f);
        Tensor bias = IlgpuTestSupport.Random(13, n);
        using PreparedWeight prepared = backend.Prepare(qw);

        Tensor y = backend.LinearInt8(codes, xScale, prepared, bias, ScalarType.Float32);

        Tensor acc = codes.to(ScalarType.Int64).mm(w8.Data.to(ScalarType.Int64).t());
        Tensor expected = acc.to(ScalarType.Float32).mul(0.037f).mul(w8.Scale.reshape(n).to(ScalarType.Float32))
            .add(bias);
        Assert.That(y.shape, Is.EqualTo(new long[] { m, n }));
        Assert.That(y.sub(expected).abs().max().item<float>(), Is.EqualTo(0f), "W8A8 must be exact");
    }

    [Test]
    public void MatchesTheTorchBackend()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight qw = WeightQuantizer.Quantize(IlgpuTestSupport.Random(14, 6, 80), QType.QInt8);
        Tensor codes = IlgpuTestSupport.Random(15, 3, 80).mul(50).clamp(-128, 127).round().to(ScalarType.Int8);
        using PreparedWeight prepared = IlgpuTestSupport.Cpu.Prepare(qw);
        using PreparedWeight reference = TorchKernels.Instance.Prepare(qw);

        Tensor y = IlgpuTestSupport.Cpu.LinearInt8(codes, tensor(0.5f), prepared, null, ScalarType.Float32);
        Tensor expected = TorchKernels.Instance.LinearInt8(codes, tensor(0.5f), reference, null, ScalarType.Float32);

        Assert.That(y.sub(expected).abs().max().item<float>(), Is.EqualTo(0f));
    }

    [Test]
    public void RefusesNonInt8Weights()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight qw = WeightQuantizer.Quantize(IlgpuTestSupport.Random(16, 4, 64), QType.QInt4, 32);
        using PreparedWeight prepared = IlgpuTestSupport.Cpu.Prepare(qw);

        var error = Assert.Throws<ArgumentException>(() =>
            IlgpuTestSupport.Cpu.LinearInt8(zeros(1, 64, ScalarType.Int8), tensor(1f), prepared, null,
                ScalarType.Float32));
        Assert.That(error!.Message, Does.Contain("qint8"));
    }
}
