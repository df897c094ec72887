using NUnit.Framework;
using Quanto.Kernels;
using Quanto.Kernels.Cpu;
using Quanto.Kernels.Cpu.Int8;
using Quanto.Quantization;
using Quanto.Tensors;
using static Quanto.Tests.Kernels.Cpu.CpuKernelTestData;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Cpu;

/// <summary>
/// The float32 weight-only GEMV on the Dot layout (qint8/qint4 weights, 1 to 3 rows, Vector512 path): whole Linear
/// calls against F.linear-in-double on the dequantized weight, on 1 and 2 threads, with and without bias, at shapes
/// with K not a multiple of the group (padded groups), groups of 32 and 128, N not a multiple of the 16-column panel,
/// a single partial panel, and enough panels for several chunks per thread; a 3-D input; the block-layout GEMV
/// (switched off) on the same product; and the activation pre-scaling factors against the code positions. Skipped,
/// naming the feature, without AVX-512.
/// </summary>
[TestFixture]
public class DotGemvTests
{
    private static readonly CpuWeightCase[] Formats =
    [
        new(QType.QInt8),
        new(QType.QInt4),
        new(QType.QInt4, 32),
        new(QType.QInt4, 128, ShiftMode.ZeroPoint),
    ];

    // (K, N): K = 100 pads one group of 128 (qint4) or the row (qint8) to 128 inputs; 2432 = 19 groups of 128;
    // N = 9 one partial panel, 80 five panels, 1030 65 panels (several chunks per thread) with a partial last one.
    private static readonly (int K, int N)[] Shapes = [(100, 9), (2432, 80), (256, 1030), (384, 33)];

    private static void RequireAvx512()
    {
        if (!CpuFeatures.IsSupported(CpuKernelPath.Vector512) || !DotGemv.Supports(DotFormat.Int4))
            Assert.Ignore("This CPU cannot run the Dot GEMV: it lacks AVX-512 F.");
    }

    public static IEnumerable<TestCaseData> Cases() =>
        from format in Formats
        from shape in Shapes
        from m in new[] { 1, 2, 3 }
        from threads in new[] { 1, 2 }
        select new TestCaseData(format, m, shape.K, shape.N, threads, (m + threads + shape.N) % 2 == 0)
            .SetName($"DotGemv_{format}_M{m}_K{shape.K}_N{shape.N}_T{threads}");

    [TestCaseSource(nameof(Cases))]
    public void Linear_Float32_MatchesTheReference(CpuWeightCase format, int m, int k, int n, int threads, bool withBias)
    {
        RequireAvx512();
        using var scope = NewDisposeScope();
        int seed = m * 31 + k * 7 + n;
        using QuantizedWeight weight = Weight(format, n, k, seed);
        Tensor x = Input(m, k, seed);
        Tensor? bias = withBias ? Bias(n, seed) : null;
        var kernels = new CpuKernels(CpuKernelPath.Vector512);
        using PreparedWeight prepared = kernels.Prepare(weight);
        int before = CpuKernels.Threads;
        Tensor y;
        try
        {
            CpuKernels.Threads = threads;
            y = kernels.Linear(x, prepared, bias);
        }
        finally
        {
            CpuKernels.Threads = before;
        }
        Assert.That(y.shape, Is.EqualTo(new long[] { m, n }));
        double[] expected = ScalarReference(x, weight.Dequantize(), bias);
        Assert.That(RelativeError(y.data<float>().ToArray(), expected), Is.LessThanOrEqualTo(1e-5));
    }

    /// <summary>A 3-D input keeps its leading dimensions, and the block-layout GEMV (the Dot GEMV switched off)
    /// computes the same product.</summary>
    [TestCase(QType.QInt4, 1)]
    [TestCase(QType.QInt4, 3)]
    [TestCase(QType.QInt8, 2)]
    public void Linear_ThreeDimensionalAndSwitchedOff_MatchTheReference(QType qtype, int m)
    {
        RequireAvx512();
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(qtype), 70, 384, m);
        Tensor x = Input(m, 384, m), bias = Bias(70, m);
        double[] expected = ScalarReference(x, weight.Dequantize(), bias);
        foreach (bool enabled in new[] { true, false })
        {
            var kernels = new CpuKernels(CpuKernelPath.Vector512) { DotGemvEnabled = enabled };
            using PreparedWeight prepared = kernels.Prepare(weight);
            Tensor y = kernels.Linear(x.reshape(m, 1, 384), prepared, bias);
            Assert.That(y.shape, Is.EqualTo(new long[] { m, 1, 70 }));
            Assert.That(RelativeError(y.reshape(m, 70).data<float>().ToArray(), expected), Is.LessThanOrEqualTo(1e-5),
                $"Dot GEMV enabled: {enabled}");
        }
    }

    /// <summary>Large activations and tiny ones (2^-60, far below 1 but far above the pre-scaling's 2^-98 limit)
    /// keep their relative accuracy: the pre-scaling by powers of two loses nothing.</summary>
    [TestCase(1e-18f)]
    [TestCase(1e12f)]
    public void Linear_ExtremeActivationMagnitudes_MatchTheReference(float magnitude)
    {
        RequireAvx512();
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(QType.QInt4), 48, 256, 3);
        Tensor x = Input(1, 256, 3) * magnitude;
        var kernels = new CpuKernels(CpuKernelPath.Vector512);
        using PreparedWeight prepared = kernels.Prepare(weight);
        Tensor y = kernels.Linear(x, prepared, null);
        double[] expected = ScalarReference(x, weight.Dequantize(), null);
        Assert.That(RelativeError(y.data<float>().ToArray(), expected), Is.LessThanOrEqualTo(1e-5));
    }

    /// <summary>Factor i is 2^-(bit of input i's code in its column's dword) per the Dot layout (input i &lt; 4 in
    /// byte i's low nibble, input 4 + i in its high nibble), except input 7, which the kernel shifts down to bit 0.
    /// </summary>
    [Test]
    public void Factors_UndoTheCodePositions()
    {
        int[] bits = [0, 8, 16, 24, 4, 12, 20, 0];
        for (int i = 0; i < 8; i++)
            Assert.That(DotGemvRows.Factor(i), Is.EqualTo(1.0f / (1L << bits[i])), $"input {i}");
    }
}
