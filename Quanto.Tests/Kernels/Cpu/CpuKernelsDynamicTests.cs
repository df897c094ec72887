using NUnit.Framework;
using Quanto.Kernels;
using Quanto.Kernels.Cpu;
using Quanto.Kernels.Cpu.Int8;
using Quanto.Quantization;
using Quanto.Tensors;
using static Quanto.Tests.Kernels.Cpu.CpuKernelTestData;
using static Quanto.Tests.Kernels.Cpu.DynamicActivationTestData;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Cpu;

/// <summary>
/// Dynamic int8 activations (<see cref="DynamicActivations"/>): every int8-activation kernel path this CPU runs
/// (the others are skipped naming the missing feature) x format x shape x mode, against F.linear-in-double on the
/// activations quantized by this test's own implementation of the rule and the dequantized weight. Integer sums are
/// exact, so only float rounding separates them: max |err| / max |y| &lt;= 1e-5.
/// </summary>
[TestFixture]
public class CpuKernelsDynamicTests
{
    private const double Tolerance = 1e-5;

    private static readonly CpuWeightCase[] Formats =
    [
        new(QType.QInt8),
        new(QType.QInt4),
        new(QType.QInt4, 32),
        new(QType.QInt4, 128, ShiftMode.ZeroPoint),
        new(QType.QInt2),
        new(QType.QInt2, 32),
        new(QType.QFloat8E4M3Fn), // no integer kernel: the weight-only path
    ];

    // (M, K, N): single rows and 4-row tiles with a padded last tile, K with per-channel groups that are not a
    // multiple of 32 (131, 100), K over several groups, N not a multiple of the 16-column panel; 100 x 640 is over
    // DotActivations.ParallelInputs with 25 tiles, so its rows are quantized on every kernel thread.
    private static readonly (int M, int K, int N)[] Shapes = [(1, 256, 37), (3, 131, 70), (6, 100, 9), (64, 288, 45),
        (9, 2304, 21), (100, 640, 40)];

    public static IEnumerable<TestCaseData> Cases()
    {
        foreach (DotPath path in Enum.GetValues<DotPath>().Where(p => p != DotPath.Auto))
        {
            foreach (CpuWeightCase format in Formats)
            {
                foreach (DynamicActivations mode in new[] { DynamicActivations.Int8, DynamicActivations.Int8PerGroup })
                {
                    foreach ((int m, int k, int n) in Shapes)
                    {
                        yield return new TestCaseData(path.ToString(), format, mode, m, k, n)
                            .SetName($"Dynamic_{path}_{format}_{mode}_M{m}_K{k}_N{n}");
                    }
                }
            }
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void LinearDynamic_MatchesTheQuantizedActivationReference(string pathName, CpuWeightCase format,
        DynamicActivations mode, int m, int k, int n)
    {
        DotPath path = Enum.Parse<DotPath>(pathName);
        RequireSupported(path);
        using var scope = NewDisposeScope();
        int seed = m * 31 + k * 7 + n;
        using QuantizedWeight weight = Weight(format, n, k, seed);
        Tensor x = Input(m, k, seed).mul(exp(Input(m, k, seed + 1)));  // magnitudes spread over decades
        Tensor bias = Bias(n, seed);
        var kernels = new CpuKernels(CpuKernelPath.Auto) { DotPath = path };
        using PreparedWeight prepared = kernels.Prepare(weight);

        Tensor y = kernels.LinearDynamic(x, prepared, bias, mode);

        bool integer = format.QType is QType.QInt8 or QType.QInt4 or QType.QInt2;
        (int group, int block) = Blocking(weight, mode == DynamicActivations.Int8PerGroup);
        Tensor activations = integer ? FakeQuantize(x, group, block) : x;
        Assert.That(y.shape, Is.EqualTo(new long[] { m, n }));
        double[] expected = ScalarReference(activations, weight.Dequantize(), bias);
        Assert.That(RelativeError(y.contiguous().data<float>().ToArray(), expected), Is.LessThanOrEqualTo(Tolerance));
    }

    /// <summary>The torch backend's default (quantize and dequantize with TorchSharp ops) follows the same rule.</summary>
    [TestCase(QType.QInt8, 128, DynamicActivations.Int8)]
    [TestCase(QType.QInt4, 32, DynamicActivations.Int8)]
    [TestCase(QType.QInt4, 128, DynamicActivations.Int8)]
    [TestCase(QType.QInt2, 128, DynamicActivations.Int8PerGroup)]
    [TestCase(QType.QFloat8E4M3Fn, 128, DynamicActivations.BFloat16)]
    public void TorchBackendDefault_MatchesTheReference(QType qtype, int group, DynamicActivations mode)
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(qtype, group), 19, 200, 3);
        Tensor x = Input(5, 200, 3);
        using PreparedWeight prepared = TorchKernels.Instance.Prepare(weight);
        IQuantKernels torch = TorchKernels.Instance; // the interface's default implementation
        Tensor y = torch.LinearDynamic(x, prepared, null, mode);
        (int g, int b) = Blocking(weight, mode == DynamicActivations.Int8PerGroup);
        Tensor activations = mode == DynamicActivations.BFloat16
            ? x.to(ScalarType.BFloat16).to(ScalarType.Float32)
            : FakeQuantize(x, g, b);
        double[] expected = ScalarReference(activations, weight.Dequantize(), null);
        Assert.That(RelativeError(y.data<float>().ToArray(), expected), Is.LessThanOrEqualTo(Tolerance));
    }

    public static IEnumerable<TestCaseData> KernelCases()
    {
        foreach (DotPath path in Enum.GetValues<DotPath>().Where(p => p is not (DotPath.Auto or DotPath.Scalar)))
        {
            foreach (DotFormat format in Enum.GetValues<DotFormat>())
            {
                foreach (int rows in new[] { 1, 4 })
                {
                    foreach (bool symmetric in new[] { false, true })
                    {
                        yield return new TestCaseData(path.ToString(), format.ToString(), rows, symmetric)
                            .SetName($"Kernel_{path}_{format}_R{rows}{(symmetric ? "_Symmetric" : "")}");
                    }
                }
            }
        }
    }

    /// <summary>Each kernel equals the scalar reference bit for bit (same integer sums, same float steps), also the
    /// ones for activation codes in [-127, 127] (symmetric; the AVX2 qint8 kernel then sums signed codes).</summary>
    [TestCaseSource(nameof(KernelCases))]
    public void Kernel_EqualsTheScalarReferenceBitForBit(string pathName, string formatName, int rows, bool symmetric)
    {
        DotPath path = Enum.Parse<DotPath>(pathName);
        DotFormat format = Enum.Parse<DotFormat>(formatName);
        RequireSupported(path);
        DotKernel kernel = DotKernels.Get(path, format, rows, symmetric);
        for (int seed = 1; seed <= 3; seed++) Assert.DoesNotThrow(() => DotKernelCheck.AgainstReference(kernel, format, seed));
    }

    public static IEnumerable<TestCaseData> Bf16Cases()
    {
        foreach (bool assembled in new[] { true, false })
        {
            foreach (CpuWeightCase format in Formats.Append(new CpuWeightCase(QType.QInt2, 128, ShiftMode.ZeroPoint)))
            {
                foreach ((int m, int k, int n) in new[] { (1, 256, 37), (6, 100, 9), (9, 2304, 21), (64, 288, 45) })
                {
                    yield return new TestCaseData(assembled, format, m, k, n)
                        .SetName($"BFloat16_{(assembled ? "assembled" : "float")}_{format}_M{m}_K{k}_N{n}");
                }
            }
        }
    }

    /// <summary>BFloat16 mode: F.linear on the activations rounded by libtorch's bf16 cast and the dequantized
    /// weight; products are exact, sums float32.</summary>
    [TestCaseSource(nameof(Bf16Cases))]
    public void LinearDynamic_BFloat16_MatchesTheRoundedActivationReference(bool assembled, CpuWeightCase format,
        int m, int k, int n)
    {
        if (assembled && Quanto.Kernels.Cpu.Jit.Bf16Assembler.MissingFeature is { } missing)
            Assert.Ignore($"This CPU cannot run the assembled bf16 kernels: it lacks {missing}.");
        using var scope = NewDisposeScope();
        int seed = m * 31 + k * 7 + n;
        using QuantizedWeight weight = Weight(format, n, k, seed);
        Tensor x = Input(m, k, seed), bias = Bias(n, seed);
        var kernels = new CpuKernels(CpuKernelPath.Auto) { AssembledBf16 = assembled };
        using PreparedWeight prepared = kernels.Prepare(weight);
        Tensor y = kernels.LinearDynamic(x, prepared, bias, DynamicActivations.BFloat16);
        double[] expected = ScalarReference(x.to(ScalarType.BFloat16).to(ScalarType.Float32), weight.Dequantize(), bias);
        Assert.That(RelativeError(y.data<float>().ToArray(), expected), Is.LessThanOrEqualTo(Tolerance));
    }

    [TestCase("Int8", 1)]
    [TestCase("Int8", 4)]
    [TestCase("Int4", 1)]
    [TestCase("Int4", 4)]
    [TestCase("Int2", 1)]
    [TestCase("Int2", 4)]
    public void Bf16Kernel_MatchesTheScalarReference(string formatName, int rows)
    {
        if (Quanto.Kernels.Cpu.Jit.Bf16Assembler.MissingFeature is { } missing)
            Assert.Ignore($"This CPU cannot run the assembled bf16 kernels: it lacks {missing}.");
        DotFormat format = Enum.Parse<DotFormat>(formatName);
        DotKernel kernel = DotKernels.Bf16(format, rows)!.Value;
        for (int seed = 1; seed <= 3; seed++) Assert.DoesNotThrow(() => DotKernelCheck.Bf16AgainstReference(kernel, format, seed));
    }

    [Test]
    public void LinearDynamic_BFloat16Input_ReturnsBFloat16AndMatches()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(QType.QInt4), 24, 256, 4);
        using PreparedWeight prepared = CpuKernels.Instance.Prepare(weight);
        Tensor x = Input(3, 256, 4).to(ScalarType.BFloat16);
        Tensor y = CpuKernels.Instance.LinearDynamic(x, prepared, null, DynamicActivations.Int8);
        Assert.That(y.dtype, Is.EqualTo(ScalarType.BFloat16));
        double[] expected = ScalarReference(FakeQuantize(x, 128, 32), weight.Dequantize(), null);
        Assert.That(RelativeError(y.to(ScalarType.Float32).data<float>().ToArray(), expected), Is.LessThanOrEqualTo(4e-3));
    }

    [Test]
    public void LinearDynamic_ZeroRowsAndNonFiniteRows()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(QType.QInt8), 8, 64, 9);
        using PreparedWeight prepared = CpuKernels.Instance.Prepare(weight);
        Tensor x = zeros(3, 64);
        x[1, 5] = tensor(float.NaN);
        float[] y = CpuKernels.Instance.LinearDynamic(x, prepared, null, DynamicActivations.Int8).data<float>().ToArray();
        Assert.That(y.Take(8), Has.All.EqualTo(0f), "an all-zero row quantizes to zeros");
        Assert.That(y.Skip(8).Take(8), Has.All.NaN, "a NaN activation makes its row NaN, as in float math");
        Assert.That(CpuKernels.Instance.LinearDynamic(zeros(0, 64), prepared, null, DynamicActivations.Int8).shape,
            Is.EqualTo(new long[] { 0, 8 }));
    }

    [Test]
    public void LinearDynamic_RejectsAnUndefinedModeAndBadShapes()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(QType.QInt4), 8, 128, 2);
        using PreparedWeight prepared = CpuKernels.Instance.Prepare(weight);
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            CpuKernels.Instance.LinearDynamic(zeros(1, 128), prepared, null, (DynamicActivations)7));
        var e = Assert.Throws<ArgumentException>(() =>
            CpuKernels.Instance.LinearDynamic(zeros(1, 127), prepared, null, DynamicActivations.Int8));
        Assert.That(e!.Message, Does.Contain("[1, 127]").And.Contain("[8, 128]"));
    }

    internal static void RequireSupported(DotPath path)
    {
        if (DotKernels.MissingFeature(path) is { } missing)
            Assert.Ignore($"This CPU cannot run the {path} int8 kernels: it lacks {missing}.");
    }
}
