using NUnit.Framework;
using Quanto.Kernels;
using Quanto.Kernels.Cpu;
using Quanto.Kernels.Cpu.Int8;
using Quanto.Kernels.Cpu.Jit;
using Quanto.Quantization;
using Quanto.Tensors;
using static Quanto.Tests.Kernels.Cpu.CpuKernelTestData;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Cpu;

/// <summary>
/// The bf16 GEMM (weights decoded once per block, vdpbf16ps micro-kernels assembled at run time): every micro-kernel
/// shape against its scalar reference, and whole calls (bf16 weight-only Linear, the BFloat16 activation mode) against
/// F.linear-in-double on the bf16 activations and the dequantized weight. Shapes cover several decode blocks along K,
/// a partial last block of panels and a partial last tile of rows. Skipped, naming the feature, without AVX512_BF16.
/// </summary>
[TestFixture]
public class Bf16GemmTests
{
    private static readonly CpuWeightCase[] Formats =
    [
        new(QType.QInt8),
        new(QType.QInt4),
        new(QType.QInt4, 32),
        new(QType.QInt4, 128, ShiftMode.ZeroPoint),
        new(QType.QInt2),
    ];

    // (M, K, N): 2432 inputs are nine whole decode blocks of 256 and a partial one (qint4 g128: 19 groups), 5 panels
    // (a block of 4, one of 1), 13 rows (two 6-row tiles and one row); K = 100: groups padded from 100 to 128 inputs.
    private static readonly (int M, int K, int N)[] Shapes = [(13, 2432, 80), (4, 100, 9), (8, 256, 64)];

    private static void RequireBf16()
    {
        if (Bf16GemmAssembler.MissingFeature is { } missing)
            Assert.Ignore($"This CPU cannot run the assembled bf16 GEMM kernels: it lacks {missing}.");
    }

    public static IEnumerable<TestCaseData> KernelShapes() =>
        from rows in Enumerable.Range(1, Bf16GemmAssembler.MaxRows)
        from panels in Enumerable.Range(1, Bf16GemmAssembler.MaxPanels)
        from shifted in new[] { false, true }
        select new TestCaseData(rows, panels, shifted).SetName($"Bf16Gemm_Kernel_R{rows}_P{panels}_Shift{shifted}");

    [TestCaseSource(nameof(KernelShapes))]
    public unsafe void MicroKernel_MatchesTheScalarReference(int rows, int panels, bool shifted)
    {
        RequireBf16();
        var kernel = Bf16GemmAssembler.Get(rows, panels, shifted);
        for (int seed = 1; seed <= 2; seed++)
            Assert.DoesNotThrow(() => Bf16GemmReference.Check(kernel, rows, panels, shifted, seed));
    }

    public static IEnumerable<TestCaseData> Cases() =>
        from format in Formats
        from shape in Shapes
        select new TestCaseData(format, shape.M, shape.K, shape.N)
            .SetName($"Bf16Gemm_{format}_M{shape.M}_K{shape.K}_N{shape.N}");

    /// <summary>bf16 in, bf16 out on the weight-only Linear: the float32 result rounded once to bf16, so within half
    /// a bf16 step (2^-9 relative) of the largest output plus float32 rounding.</summary>
    [TestCaseSource(nameof(Cases))]
    public void Linear_BFloat16Input_MatchesTheReference(CpuWeightCase format, int m, int k, int n)
    {
        RequireBf16();
        using var scope = NewDisposeScope();
        int seed = m * 31 + k * 7 + n;
        using QuantizedWeight weight = Weight(format, n, k, seed);
        Tensor x = Input(m, k, seed).to(ScalarType.BFloat16), bias = Bias(n, seed);
        using PreparedWeight prepared = CpuKernels.Instance.Prepare(weight);
        Tensor y = CpuKernels.Instance.Linear(x, prepared, bias);
        Assert.That(y.dtype, Is.EqualTo(ScalarType.BFloat16));
        Assert.That(y.shape, Is.EqualTo(new long[] { m, n }));
        double[] expected = ScalarReference(x.to(ScalarType.Float32), weight.Dequantize(), bias);
        Assert.That(RelativeError(y.to(ScalarType.Float32).data<float>().ToArray(), expected),
            Is.LessThanOrEqualTo(Math.ScaleB(1, -8)));
    }

    /// <summary>The BFloat16 activation mode on float32 rows: float32 out, within float32 rounding.</summary>
    [TestCaseSource(nameof(Cases))]
    public void LinearDynamic_BFloat16_MatchesTheReference(CpuWeightCase format, int m, int k, int n)
    {
        RequireBf16();
        using var scope = NewDisposeScope();
        int seed = m * 17 + k * 5 + n;
        using QuantizedWeight weight = Weight(format, n, k, seed);
        Tensor x = Input(m, k, seed), bias = Bias(n, seed);
        using PreparedWeight prepared = CpuKernels.Instance.Prepare(weight);
        Tensor y = CpuKernels.Instance.LinearDynamic(x, prepared, bias, DynamicActivations.BFloat16);
        double[] expected = ScalarReference(x.to(ScalarType.BFloat16).to(ScalarType.Float32), weight.Dequantize(), bias);
        Assert.That(RelativeError(y.data<float>().ToArray(), expected), Is.LessThanOrEqualTo(1e-5));
    }

    /// <summary>The decoders against the codes read one by one: every pair of every unit holds the exact bf16 codes
    /// of its two inputs (qint8 without its +128 offset).</summary>
    [TestCase(QType.QInt8)]
    [TestCase(QType.QInt4)]
    [TestCase(QType.QInt2)]
    public unsafe void Decode_GivesTheCodesOfEachPair(QType qtype)
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(qtype), 48, 256, 3);
        using var dot = new DotWeight(weight);
        Tensor codes = weight is WeightQBytesTensor bytes ? bytes.Data.to(ScalarType.Int32)
            : ((WeightQBitsTensor)weight).UnpackCodes().to(ScalarType.Int32).reshape(48, 256);
        int[] expected = codes.data<int>().ToArray();
        int units = dot.Groups * dot.UnitsPerGroup, pairsPerUnit = dot.Format.PairsPerUnit();
        var decoded = new ushort[units * pairsPerUnit * 2 * 32];
        var scales = new float[dot.Groups * 2 * 16];
        var shifts = new float[scales.Length];
        fixed (ushort* target = decoded)
        fixed (float* s = scales, t = shifts)
        {
            Bf16Panels.Decode(dot, 1, 2, 0, units, target, s, qtype == QType.QInt8 ? null : t);
        }
        for (int q = 0; q < units * pairsPerUnit; q++)
        {
            for (int p = 0; p < 2; p++)
            {
                for (int c = 0; c < 16; c++)
                {
                    for (int i = 0; i < 2; i++)
                    {
                        int column = (1 + p) * 16 + c, input = (2 * q + i) % 256;
                        float value = BitConverter.UInt32BitsToSingle((uint)decoded[(q * 2 + p) * 32 + 2 * c + i] << 16);
                        Assert.That(value, Is.EqualTo((float)expected[column * 256 + input]),
                            $"pair {q}, panel {p}, column {c}, input {i}");
                    }
                }
            }
        }
    }
}
