using NUnit.Framework;
using Quanto.Kernels;
using Quanto.Kernels.Cpu;
using Quanto.Quantization;
using Quanto.Tensors;
using static Quanto.Tests.Kernels.Cpu.CpuKernelTestData;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Cpu;

/// <summary>
/// Weight-only formats: every supported path x format x shape against two independent references on the
/// dequantized weight: TorchSharp's F.linear (float32) and a plain C# double-precision loop.
/// Criterion (issue #8): max |err| / max |y| &lt;= 1e-5.
/// </summary>
[TestFixture]
public class CpuKernelsLinearTests
{
    private const double Tolerance = 1e-5;

    private static readonly CpuWeightCase[] Formats =
    [
        new(QType.QInt8),
        new(QType.QFloat8E4M3Fn),
        new(QType.QFloat8E5M2),
        new(QType.QFloat8E4M3Fnuz),
        new(QType.QInt4),
        new(QType.QInt4, 32),
        new(QType.QInt4, 128, ShiftMode.ZeroPoint),
        new(QType.QInt2),
        new(QType.QInt2, 32),
    ];

    // (M, K, N): GEMV (M < 4) and GEMM rows, odd K and N, K not a multiple of a block (8-bit: 64 codes),
    // per-channel groups (K <= 128, or no divisor) that are not whole blocks, K above one GEMM panel (1024).
    private static readonly (int M, int K, int N)[] Shapes =
    [
        (1, 256, 37), (3, 131, 70), (4, 100, 9), (64, 288, 45), (7, 2304, 21), (130, 160, 6),
    ];

    public static IEnumerable<TestCaseData> Cases()
    {
        foreach (CpuKernelPath path in CpuFeatures.Supported)
        {
            foreach (CpuWeightCase format in Formats)
            {
                foreach ((int m, int k, int n) in Shapes)
                {
                    yield return new TestCaseData(path, format, m, k, n)
                        .SetName($"Linear_{path}_{format}_M{m}_K{k}_N{n}");
                }
            }
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void Linear_MatchesTorchAndScalarReferences(CpuKernelPath path, CpuWeightCase format, int m, int k, int n)
    {
        using var scope = NewDisposeScope();
        int seed = m * 31 + k * 7 + n;
        using QuantizedWeight weight = Weight(format, n, k, seed);
        Tensor x = Input(m, k, seed);
        Tensor bias = Bias(n, seed);
        var kernels = new CpuKernels(path);
        using PreparedWeight prepared = kernels.Prepare(weight);

        Tensor y = kernels.Linear(x, prepared, bias);

        Tensor dequantized = weight.Dequantize();
        Tensor torchY = nn.functional.linear(x, dequantized, bias);
        float[] actual = y.contiguous().data<float>().ToArray();
        Assert.That(y.shape, Is.EqualTo(new long[] { m, n }));
        Assert.That(RelativeError(actual, ToDoubles(torchY)), Is.LessThanOrEqualTo(Tolerance), "vs torch F.linear");
        Assert.That(RelativeError(actual, ScalarReference(x, dequantized, bias)), Is.LessThanOrEqualTo(Tolerance),
            "vs scalar double reference");
    }

    [Test]
    public void Linear_KeepsLeadingDimensionsAndRunsWithoutBias()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(QType.QInt4), 12, 256, 5);
        using PreparedWeight prepared = CpuKernels.Instance.Prepare(weight);
        Tensor x = randn(2, 3, 256);

        Tensor y = CpuKernels.Instance.Linear(x, prepared, null);

        Assert.That(y.shape, Is.EqualTo(new long[] { 2, 3, 12 }));
        double[] expected = ScalarReference(x.reshape(6, 256), weight.Dequantize(), null);
        Assert.That(RelativeError(y.reshape(6, 12).data<float>().ToArray(), expected), Is.LessThanOrEqualTo(Tolerance));
    }

    [Test]
    public void Linear_BFloat16Input_ReturnsBFloat16()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(QType.QInt8), 16, 128, 6);
        using PreparedWeight prepared = CpuKernels.Instance.Prepare(weight);
        Tensor x = randn(2, 128).to(ScalarType.BFloat16);

        Tensor y = CpuKernels.Instance.Linear(x, prepared, null);

        Assert.That(y.dtype, Is.EqualTo(ScalarType.BFloat16));
        // The input is converted exactly (bf16 -> fp32); only the output rounding to bf16 differs: 2^-8 relative.
        double[] expected = ScalarReference(x.to(ScalarType.Float32), weight.Dequantize(), null);
        Assert.That(RelativeError(y.to(ScalarType.Float32).data<float>().ToArray(), expected), Is.LessThanOrEqualTo(4e-3));
    }

    [Test]
    public void Linear_SingleAndMultiThreaded_GiveIdenticalResults()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(QType.QInt4), 300, 512, 7);
        var single = new CpuKernels(CpuKernelPath.Auto, multiThreaded: false);
        using PreparedWeight preparedSingle = single.Prepare(weight);
        using PreparedWeight preparedMulti = CpuKernels.Instance.Prepare(weight);
        foreach (int m in new[] { 1, 16 })
        {
            Tensor x = randn(m, 512);
            float[] a = single.Linear(x, preparedSingle, null).data<float>().ToArray();
            float[] b = CpuKernels.Instance.Linear(x, preparedMulti, null).data<float>().ToArray();
            Assert.That(b, Is.EqualTo(a), $"M={m}: the work split must not change any output");
        }
    }

    [Test]
    public void Linear_ConcurrentCallers_AllGetCorrectResults()
    {
        using QuantizedWeight weight = Weight(new CpuWeightCase(QType.QInt8), 256, 512, 8);
        using PreparedWeight prepared = CpuKernels.Instance.Prepare(weight);
        using Tensor dequantized = weight.Dequantize();
        var errors = new double[8];
        Parallel.For(0, errors.Length, i =>
        {
            using var scope = NewDisposeScope();
            Tensor x = Input(1 + i % 5, 512, i);
            Tensor y = CpuKernels.Instance.Linear(x, prepared, null);
            errors[i] = RelativeError(y.data<float>().ToArray(), ScalarReference(x, dequantized, null));
        });
        Assert.That(errors, Has.All.LessThanOrEqualTo(Tolerance));
    }
}
