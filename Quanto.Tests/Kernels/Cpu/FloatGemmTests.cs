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
/// The float32 weight-only GEMM (qint8/qint4/qint2 weights decoded once per block of 64 columns x 256 inputs, 6 x 64
/// register tiles): whole Linear calls against F.linear-in-double on the dequantized weight, on 1 and 2 threads, at
/// shapes with several decode blocks along K and a partial last one, a last block of fewer than four panels, N not a
/// multiple of 64, M not a multiple of the 6-row tile, M at the threshold, and more rows than one row block; and the
/// decoder against code * scale - shift computed here from the raw codes; at both widths (6 x 64 tiles on AVX-512,
/// 6 x 16 on AVX2), each skipped, naming the feature, where the CPU lacks it.
/// </summary>
[TestFixture]
public class FloatGemmTests
{
    private static readonly CpuWeightCase[] Formats =
    [
        new(QType.QInt8),
        new(QType.QInt4),
        new(QType.QInt4, 32),
        new(QType.QInt4, 128, ShiftMode.ZeroPoint),
        new(QType.QInt2),
        new(QType.QInt2, 32, ShiftMode.ZeroPoint),
    ];

    // (M, K, N): 2432 inputs = nine decode blocks of 256 and a partial one, N = 80 a block of four panels and one of
    // one; M = 4 the threshold, 13 two tiles and one row, 130 two row blocks; K = 100 pads groups to 128 inputs.
    private static readonly (int M, int K, int N)[] Shapes =
        [(4, 100, 9), (13, 2432, 80), (6, 256, 64), (11, 320, 130), (130, 512, 70)];

    /// <summary>The widths the float GEMM runs at.</summary>
    private static readonly CpuKernelPath[] Paths = [CpuKernelPath.Vector512, CpuKernelPath.Vector256];

    private static void Require(CpuKernelPath path)
    {
        if (!CpuFeatures.IsSupported(path) || !FloatPanels.Runs(path))
        {
            Assert.Ignore(path == CpuKernelPath.Vector512
                ? "This CPU cannot run the Vector512 float GEMM: it lacks AVX-512 (F and BW)."
                : "This CPU cannot run the Vector256 float GEMM: it lacks AVX2 or FMA.");
        }
    }

    public static IEnumerable<TestCaseData> Cases() =>
        from path in Paths
        from format in Formats
        from shape in Shapes
        from threads in new[] { 1, 2 }
        select new TestCaseData(path, format, shape.M, shape.K, shape.N, threads)
            .SetName($"FloatGemm_{path}_{format}_M{shape.M}_K{shape.K}_N{shape.N}_T{threads}");

    [TestCaseSource(nameof(Cases))]
    public void Linear_Float32_MatchesTheReference(CpuKernelPath path, CpuWeightCase format, int m, int k, int n,
        int threads)
    {
        Require(path);
        using var scope = NewDisposeScope();
        int seed = m * 29 + k * 3 + n;
        using QuantizedWeight weight = Weight(format, n, k, seed);
        Tensor x = Input(m, k, seed), bias = Bias(n, seed);
        // Every shape's rows take the float GEMM (Vector256 starts at 16 rows by default).
        var kernels = new CpuKernels(path) { FloatGemmRows = CpuKernels.FloatGemmMinRows };
        using PreparedWeight prepared = kernels.Prepare(weight);
        Assert.That(kernels.RunsFloatGemmFor(prepared, m), Is.True, "the call takes the float GEMM");
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

    /// <summary>Below the threshold (3 rows) and with the float GEMM turned off the other kernels still run the same
    /// product, and a 3-D input keeps its leading dimensions.</summary>
    [TestCase(CpuKernelPath.Vector512, 3)]
    [TestCase(CpuKernelPath.Vector512, 8)]
    [TestCase(CpuKernelPath.Vector256, 3)]
    [TestCase(CpuKernelPath.Vector256, 8)]
    public void Linear_AroundTheThreshold_MatchesTheReference(CpuKernelPath path, int m)
    {
        Require(path);
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(QType.QInt4), 70, 384, m);
        Tensor x = Input(m, 384, m), bias = Bias(70, m);
        double[] expected = ScalarReference(x, weight.Dequantize(), bias);
        foreach (bool enabled in new[] { true, false })
        {
            var kernels = new CpuKernels(path) { FloatGemmEnabled = enabled };
            using PreparedWeight prepared = kernels.Prepare(weight);
            Tensor y = kernels.Linear(x.reshape(1, m, 384), prepared, bias);
            Assert.That(y.shape, Is.EqualTo(new long[] { 1, m, 70 }));
            Assert.That(RelativeError(y.reshape(m, 70).data<float>().ToArray(), expected), Is.LessThanOrEqualTo(1e-5),
                $"float GEMM enabled: {enabled}");
        }
    }

    /// <summary>The decoder writes fma(code, scale, -shift) for every input and column (qint8: code * scale, a
    /// uint8 zero-point as the shift zp * scale), computed here from the unpacked codes.</summary>
    [TestCase(CpuKernelPath.Vector512, QType.QInt8, ShiftMode.Float)]
    [TestCase(CpuKernelPath.Vector512, QType.QInt4, ShiftMode.Float)]
    [TestCase(CpuKernelPath.Vector512, QType.QInt4, ShiftMode.ZeroPoint)]
    [TestCase(CpuKernelPath.Vector512, QType.QInt2, ShiftMode.Float)]
    [TestCase(CpuKernelPath.Vector256, QType.QInt8, ShiftMode.Float)]
    [TestCase(CpuKernelPath.Vector256, QType.QInt4, ShiftMode.Float)]
    [TestCase(CpuKernelPath.Vector256, QType.QInt4, ShiftMode.ZeroPoint)]
    [TestCase(CpuKernelPath.Vector256, QType.QInt2, ShiftMode.Float)]
    [TestCase(CpuKernelPath.Scalar, QType.QInt4, ShiftMode.Float)]
    [TestCase(CpuKernelPath.Scalar, QType.QInt2, ShiftMode.ZeroPoint)]
    public unsafe void Decode_GivesTheDequantizedWeights(CpuKernelPath path, QType qtype, ShiftMode shift)
    {
        if (path != CpuKernelPath.Scalar) Require(path);
        using var scope = NewDisposeScope();
        const int N = 48, K = 256;
        using QuantizedWeight weight = Weight(new CpuWeightCase(qtype, 64, shift), N, K, 5);
        using var dot = new DotWeight(weight);
        int[] codes;
        float[] scales;
        float[] shifts;
        int group;
        if (weight is WeightQBytesTensor bytes)
        {
            codes = bytes.Data.to(ScalarType.Int32).reshape(-1).data<int>().ToArray();
            scales = bytes.Scale.to(ScalarType.Float32).reshape(-1).data<float>().ToArray();
            shifts = new float[N];
            group = K;
        }
        else
        {
            var bits = (WeightQBitsTensor)weight;
            codes = bits.UnpackCodes().to(ScalarType.Int32).reshape(-1).data<int>().ToArray();
            scales = bits.Scale.to(ScalarType.Float32).reshape(-1).data<float>().ToArray();
            shifts = bits.HasZeroPoint
                ? bits.Shift.to(ScalarType.Int32).reshape(-1).data<int>().ToArray().Select((z, i) => z * scales[i]).ToArray()
                : bits.Shift.to(ScalarType.Float32).reshape(-1).data<float>().ToArray();
            group = bits.GroupSize;
        }
        int units = dot.Groups * dot.UnitsPerGroup, unitK = dot.Format.UnitK();
        Assert.That(units * unitK, Is.EqualTo(K), "no padding at this shape");
        var decoded = new float[K * FloatGemmJob.BlockColumns];
        fixed (float* target = decoded)
        {
            // Panels 1 and 2 (columns 16..47) into block columns 0..31.
            FloatPanels.Decode(dot, 1, 2, 0, units, target, path);
        }
        for (int i = 0; i < K; i++)
        {
            for (int c = 0; c < 32; c++)
            {
                int column = 16 + c, g = column * (K / group) + i / group;
                float expected = MathF.FusedMultiplyAdd(codes[column * K + i], scales[g], -shifts[g]);
                Assert.That(decoded[i * FloatGemmJob.BlockColumns + c], Is.EqualTo(expected), $"input {i}, column {column}");
            }
        }
    }
}
