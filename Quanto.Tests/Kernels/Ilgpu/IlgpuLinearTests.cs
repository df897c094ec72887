using NUnit.Framework;
using Quanto.Kernels;
using Quanto.Kernels.Ilgpu.Accelerators;
using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Ilgpu;

/// <summary>
/// Weight-only matmuls on every ILGPU accelerator present against TorchSharp's float math on the dequantized weight
/// (the torch backend): max|err| / max|y| &lt;= 1e-5. Shapes are small (the CPU accelerator simulates every thread)
/// but cover the tails: N not a multiple of the 4 features per group, M not a multiple of the 4 GEMM rows, K not a
/// multiple of the 16/32/64 codes per chunk, K over one 2048-element x tile, and groups of 8 that change inside a
/// packed word.
/// </summary>
[TestFixture]
public sealed class IlgpuLinearTests
{
    private const double Tolerance = 1e-5;

    // (qtype, M, N, K, group): M = 1 runs the GEMV kernel, M > 1 the GEMM kernel.
    private static readonly (QType QType, int M, int N, int K, int Group)[] Shapes =
    [
        (QType.QInt8, 1, 7, 40, 0), (QType.QInt8, 5, 9, 200, 0), (QType.QInt8, 2, 5, 2100, 0),
        (QType.QFloat8E4M3Fn, 1, 6, 72, 0), (QType.QFloat8E4M3Fn, 5, 9, 200, 0),
        (QType.QFloat8E5M2, 1, 6, 72, 0), (QType.QFloat8E5M2, 5, 9, 200, 0),
        (QType.QInt4, 1, 7, 64, 32), (QType.QInt4, 5, 9, 200, 8), (QType.QInt4, 2, 5, 2176, 128),
        (QType.QInt2, 1, 7, 288, 96), (QType.QInt2, 5, 9, 200, 8), (QType.QInt2, 2, 3, 2176, 128),
    ];

    private static IEnumerable<TestCaseData> Cases() =>
        from kind in IlgpuTestSupport.Kinds
        from s in Shapes
        select new TestCaseData(kind, s.QType, s.M, s.N, s.K, s.Group)
            .SetName($"{kind}_{s.QType}_M{s.M}_N{s.N}_K{s.K}" + (s.Group > 0 ? $"_g{s.Group}" : ""));

    [TestCaseSource(nameof(Cases))]
    public void MatchesTorchFloatReference(AcceleratorKind kind, QType qtype, int m, int n, int k, int group)
    {
        var backend = IlgpuTestSupport.Backend(kind);
        using var scope = NewDisposeScope();
        Tensor w = IlgpuTestSupport.Random(1, n, k);
        Tensor x = IlgpuTestSupport.Random(2, m, k);
        Tensor bias = IlgpuTestSupport.Random(3, n);
        using QuantizedWeight qw = WeightQuantizer.Quantize(w, qtype, group > 0 ? group : null);
        if (qw is WeightQBitsTensor bits) Assert.That(bits.GroupSize, Is.EqualTo(group), "group size under test");
        Assert.That(backend.CanRun(qw, ScalarType.Float32, CPU), Is.True);
        using PreparedWeight prepared = backend.Prepare(qw);
        using PreparedWeight reference = TorchKernels.Instance.Prepare(qw);

        Tensor y = backend.Linear(x, prepared, bias);
        Tensor expected = TorchKernels.Instance.Linear(x, reference, bias);

        Assert.That(IlgpuTestSupport.RelativeError(y, expected), Is.LessThanOrEqualTo(Tolerance));
    }

    [TestCase(AcceleratorKind.Cpu)]
    [TestCase(AcceleratorKind.OpenCL)]
    public void ZeroPointInt4MatchesReference(AcceleratorKind kind)
    {
        var backend = IlgpuTestSupport.Backend(kind);
        using var scope = NewDisposeScope();
        Tensor w = IlgpuTestSupport.Random(4, 6, 96);
        Tensor x = IlgpuTestSupport.Random(5, 3, 96);
        using QuantizedWeight qw = WeightQuantizer.Quantize(w, QType.QInt4, 32, shiftMode: ShiftMode.ZeroPoint);
        Assert.That(((WeightQBitsTensor)qw).HasZeroPoint, Is.True);
        using PreparedWeight prepared = backend.Prepare(qw);
        using PreparedWeight reference = TorchKernels.Instance.Prepare(qw);

        Tensor y = backend.Linear(x, prepared, null);

        Assert.That(IlgpuTestSupport.RelativeError(y, TorchKernels.Instance.Linear(x, reference, null)),
            Is.LessThanOrEqualTo(Tolerance));
    }

    [Test]
    public void KeepsLeadingDimensionsAndBFloat16()
    {
        var backend = IlgpuTestSupport.Cpu;
        using var scope = NewDisposeScope();
        using QuantizedWeight qw = WeightQuantizer.Quantize(IlgpuTestSupport.Random(6, 5, 48), QType.QInt8);
        using PreparedWeight prepared = backend.Prepare(qw);
        using PreparedWeight reference = TorchKernels.Instance.Prepare(qw);
        Tensor x = IlgpuTestSupport.Random(7, 2, 3, 48).to(ScalarType.BFloat16);

        Tensor y = backend.Linear(x, prepared, null);

        Assert.That(y.shape, Is.EqualTo(new long[] { 2, 3, 5 }));
        Assert.That(y.dtype, Is.EqualTo(ScalarType.BFloat16));
        // Both round to bfloat16 at the end; compare in float32 against the float32 reference.
        Tensor expected = TorchKernels.Instance.Linear(x.to(ScalarType.Float32), reference, null);
        Assert.That(IlgpuTestSupport.RelativeError(y.to(ScalarType.Float32), expected), Is.LessThanOrEqualTo(1e-2));
    }

    [Test]
    public void EmptyBatchGivesEmptyOutput()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight qw = WeightQuantizer.Quantize(IlgpuTestSupport.Random(8, 4, 32), QType.QInt8);
        using PreparedWeight prepared = IlgpuTestSupport.Cpu.Prepare(qw);

        Tensor y = IlgpuTestSupport.Cpu.Linear(zeros(0, 32), prepared, null);

        Assert.That(y.shape, Is.EqualTo(new long[] { 0, 4 }));
    }
}
