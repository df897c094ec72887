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
/// The float32 weight-only GEMV on the Dot layout (qint8/qint4/qint2 weights, 1 to 3 rows) in both forms, AVX-512
/// and AVX2 + FMA: the kernel itself and whole Linear calls on the Vector512 / Vector256 paths, against F.linear in
/// float64 on the dequantized weight, on 1 and 2 threads, with and without bias, at shapes with K not a multiple of
/// the group (padded groups), groups of 32, 64 and 128 (and zero-points), N not a multiple of the 16-column panel, a
/// single partial panel, and enough panels for several chunks per thread; a 3-D input; which GEMV a call takes; the
/// block-layout GEMV (switched off) on the same product; and the activation pre-scaling factors against the code
/// positions. A form this CPU lacks is skipped, naming the feature.
/// </summary>
[TestFixture]
public class DotGemvTests
{
    private static readonly CpuWeightCase[] Formats =
    [
        new(QType.QInt8),
        new(QType.QInt4, 32),
        new(QType.QInt4, 64),
        new(QType.QInt4, 128),
        new(QType.QInt4, 128, ShiftMode.ZeroPoint),
        new(QType.QInt2, 32),
        new(QType.QInt2, 64),
        new(QType.QInt2, 128),
        new(QType.QInt2, 64, ShiftMode.ZeroPoint),
    ];

    private static readonly CpuKernelPath[] Paths = [CpuKernelPath.Vector512, CpuKernelPath.Vector256];

    // (K, N): K = 100 pads one group (the row) to 128 inputs, with a tail of 4 past 16-input blocks; 2432 = 19 groups
    // of 128, 38 of 64, 76 of 32; N = 9 one partial panel, 80 five panels, 1030 65 panels (several chunks per
    // thread) with a partial last one, 33 three panels, the last with one column.
    private static readonly (int K, int N)[] Shapes = [(100, 9), (2432, 80), (256, 1030), (384, 33)];

    /// <summary>Skips, naming the missing feature, where this CPU cannot run the <paramref name="path"/> form.</summary>
    private static void Require(CpuKernelPath path)
    {
        if (DotGemv.Supports(path) && CpuFeatures.IsSupported(path)) return;
        Assert.Ignore(path == CpuKernelPath.Vector512
            ? "This CPU cannot run the AVX-512 Dot GEMV: it lacks AVX-512 F/BW."
            : "This CPU cannot run the AVX2 Dot GEMV: it lacks AVX2 or FMA.");
    }

    /// <summary>F.linear in float64 on the dequantized weight: y = x · Wᵀ + b.</summary>
    private static double[] Reference(Tensor x, QuantizedWeight weight, Tensor? bias)
    {
        using var scope = NewDisposeScope();
        Tensor w = weight.Dequantize().to(ScalarType.Float64).reshape(weight.Shape[0], -1);
        Tensor y = nn.functional.linear(x.to(ScalarType.Float64), w, bias?.to(ScalarType.Float64));
        return ToDoubles(y);
    }

    private static TestCaseData Case(string kind, CpuKernelPath path, CpuWeightCase format, int m, (int K, int N) s,
        int threads) =>
        new TestCaseData(path, format, m, s.K, s.N, threads, (m + threads + s.N) % 2 == 0)
            .SetName($"DotGemv{kind}_{path}_{format}_M{m}_K{s.K}_N{s.N}_T{threads}");

    public static IEnumerable<TestCaseData> LinearCases() =>
        from path in Paths
        from format in Formats
        from shape in Shapes
        from m in new[] { 1, 2, 3 }
        from threads in new[] { 1, 2 }
        select Case("", path, format, m, shape, threads);

    public static IEnumerable<TestCaseData> KernelCases() =>
        from path in Paths
        from format in Formats
        from shape in Shapes
        from m in new[] { 1, 2, 3 }
        select Case("Kernel", path, format, m, shape, 1);

    [TestCaseSource(nameof(LinearCases))]
    public void Linear_Float32_MatchesTheReference(CpuKernelPath path, CpuWeightCase format, int m, int k, int n,
        int threads, bool withBias)
    {
        Require(path);
        using var scope = NewDisposeScope();
        int seed = m * 31 + k * 7 + n;
        using QuantizedWeight weight = Weight(format, n, k, seed);
        Tensor x = Input(m, k, seed);
        Tensor? bias = withBias ? Bias(n, seed) : null;
        var kernels = new CpuKernels(path);
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
        Assert.That(RelativeError(y.data<float>().ToArray(), Reference(x, weight, bias)), Is.LessThanOrEqualTo(1e-5));
    }

    /// <summary>The kernel of each form on its own (whichever GEMV <see cref="CpuKernels"/> routes a format to).</summary>
    [TestCaseSource(nameof(KernelCases))]
    public unsafe void Run_EachForm_MatchesTheReference(CpuKernelPath path, CpuWeightCase format, int m, int k, int n,
        int threads, bool withBias)
    {
        Require(path);
        Assert.That(threads, Is.EqualTo(1));
        using var scope = NewDisposeScope();
        int seed = m * 29 + k * 5 + n;
        using QuantizedWeight weight = Weight(format, n, k, seed);
        Tensor x = Input(m, k, seed);
        Tensor? bias = withBias ? Bias(n, seed) : null;
        using var dot = new DotWeight(weight);
        float[] xs = x.data<float>().ToArray(), y = new float[m * n];
        float[]? bs = bias?.data<float>().ToArray();
        fixed (float* xp = xs, yp = y, bp = bs)
        {
            using var rows = new DotGemvRows(xp, m, dot);
            DotGemv.Run(path, dot, rows, 0, dot.Panels, yp, bp);
        }
        Assert.That(RelativeError(y, Reference(x, weight, bias)), Is.LessThanOrEqualTo(1e-5));
    }

    /// <summary>
    /// Each weight remembers the weight the GEMV ran after it last time (the order of a decode step's layers), which
    /// the waiting kernel worker prefetches: a sequence a, b, c, a links a to b, b to c, c to a; a changed order
    /// relinks; a disposed weight is forgotten. Two weights alternated on two threads with the prefetch on give
    /// the reference product every call (a prefetch is a hint, never data).
    /// </summary>
    [Test]
    [NonParallelizable]
    public void Gemv_RemembersTheNextWeight_AndItsPrefetchChangesNoResult()
    {
        CpuKernelPath path = DotGemv.Supports(CpuKernelPath.Vector512) && CpuFeatures.IsSupported(CpuKernelPath.Vector512)
            ? CpuKernelPath.Vector512
            : CpuKernelPath.Vector256;
        Require(path);
        using var scope = NewDisposeScope();
        var kernels = new CpuKernels(path);
        QuantizedWeight[] weights = [.. Enumerable.Range(0, 3).Select(i => Weight(new CpuWeightCase(QType.QInt4, 64), 1030, 512, i))];
        var prepared = weights.Select(w => (CpuPreparedWeight)kernels.Prepare(w)).ToArray();
        try
        {
            Tensor x = Input(1, 512, 11);
            double[][] expected = [.. weights.Select(w => Reference(x, w, null))];
            foreach (int i in new[] { 0, 1, 2, 0 }) kernels.Linear(x, prepared[i], null);
            DotWeight a = prepared[0].Dot, b = prepared[1].Dot, c = prepared[2].Dot;
            Assert.That(a.Next, Is.SameAs(b));
            Assert.That(b.Next, Is.SameAs(c));
            Assert.That(c.Next, Is.SameAs(a));
            foreach (int i in new[] { 2, 1 }) kernels.Linear(x, prepared[i], null);
            Assert.That(a.Next, Is.SameAs(c), "a ran before c last");
            Assert.That(c.Next, Is.SameAs(b), "relinked");

            int before = CpuKernels.Threads;
            bool prefetch = CpuParallel.IdlePrefetch;
            try
            {
                CpuKernels.Threads = 2;
                CpuParallel.IdlePrefetch = true;
                for (int call = 0; call < 40; call++)
                {
                    int i = call % 2;
                    float[] y = kernels.Linear(x, prepared[i], null).data<float>().ToArray();
                    Assert.That(RelativeError(y, expected[i]), Is.LessThanOrEqualTo(1e-5), $"call {call}");
                }
            }
            finally
            {
                CpuKernels.Threads = before;
                CpuParallel.IdlePrefetch = prefetch;
            }
            Assert.That(a.Next, Is.SameAs(b));
            prepared[1].Dispose();
            weights[1].Dispose();
            Assert.That(a.Next, Is.Null, "a disposed weight is not prefetched");
        }
        finally
        {
            foreach (CpuPreparedWeight p in prepared) p.Dispose();
            foreach (QuantizedWeight w in weights) w.Dispose();
        }
    }

    /// <summary>A 3-D input keeps its leading dimensions, and the block-layout GEMV (the Dot GEMV switched off)
    /// computes the same product.</summary>
    [TestCase(CpuKernelPath.Vector512, QType.QInt4, 1)]
    [TestCase(CpuKernelPath.Vector512, QType.QInt4, 3)]
    [TestCase(CpuKernelPath.Vector512, QType.QInt8, 2)]
    [TestCase(CpuKernelPath.Vector256, QType.QInt4, 1)]
    [TestCase(CpuKernelPath.Vector256, QType.QInt4, 3)]
    [TestCase(CpuKernelPath.Vector256, QType.QInt8, 2)]
    [TestCase(CpuKernelPath.Vector256, QType.QInt2, 3)]
    public void Linear_ThreeDimensionalAndSwitchedOff_MatchTheReference(CpuKernelPath path, QType qtype, int m)
    {
        Require(path);
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(qtype), 70, 384, m);
        Tensor x = Input(m, 384, m), bias = Bias(70, m);
        double[] expected = Reference(x, weight, bias);
        foreach (bool enabled in new[] { true, false })
        {
            var kernels = new CpuKernels(path) { DotGemvEnabled = enabled };
            using PreparedWeight prepared = kernels.Prepare(weight);
            Tensor y = kernels.Linear(x.reshape(m, 1, 384), prepared, bias);
            Assert.That(y.shape, Is.EqualTo(new long[] { m, 1, 70 }));
            Assert.That(RelativeError(y.reshape(m, 70).data<float>().ToArray(), expected), Is.LessThanOrEqualTo(1e-5),
                $"Dot GEMV enabled: {enabled}");
        }
    }

    /// <summary>Which layout a 1-3 row call made: the Dot layout alone where the Dot GEMV runs it (qint8, qint4 and
    /// qint2 on both forms), the block layout alone where it is switched off, and the block layout from 4 rows on the
    /// AVX2 path (the 4 x 4 panel GEMM runs 4 to 15 rows there).</summary>
    [TestCase(CpuKernelPath.Vector512, QType.QInt8, true)]
    [TestCase(CpuKernelPath.Vector512, QType.QInt4, true)]
    [TestCase(CpuKernelPath.Vector512, QType.QInt2, true)]
    [TestCase(CpuKernelPath.Vector256, QType.QInt8, true)]
    [TestCase(CpuKernelPath.Vector256, QType.QInt4, true)]
    [TestCase(CpuKernelPath.Vector256, QType.QInt2, true)]
    public unsafe void Linear_OneToThreeRows_TakeTheDotGemvWhereItRuns(CpuKernelPath path, QType qtype, bool dot)
    {
        Require(path);
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(qtype), 48, 256, 5);
        long dotBytes, blockBytes;
        using (var layout = new DotWeight(weight)) dotBytes = layout.ByteSize;
        using (var blocks = (CpuPreparedWeight)new CpuKernels(path).Prepare(weight))
        {
            blocks.EnsureBlocks();
            blockBytes = blocks.ByteSize;
        }
        foreach (bool enabled in new[] { true, false })
        {
            var kernels = new CpuKernels(path) { DotGemvEnabled = enabled };
            using var prepared = (CpuPreparedWeight)kernels.Prepare(weight);
            for (int m = 1; m <= DotGemv.MaxRows; m++) kernels.Linear(Input(m, 256, m), prepared, null);
            bool dotLayout = enabled && dot;
            Assert.That(prepared.Codes == null, Is.EqualTo(dotLayout), $"block layout made, Dot GEMV {enabled}");
            Assert.That(prepared.ByteSize, Is.EqualTo(dotLayout ? dotBytes : blockBytes), $"Dot GEMV {enabled}");
            if (path != CpuKernelPath.Vector256) continue;
            kernels.Linear(Input(4, 256, 4), prepared, null);
            Assert.That(prepared.Codes != null, "4 rows on the block GEMM");
        }
    }

    /// <summary>Large activations and tiny ones (2^-60, far below 1 but far above the pre-scaling's 2^-98 limit)
    /// keep their relative accuracy: the pre-scaling by powers of two loses nothing.</summary>
    [TestCase(CpuKernelPath.Vector512, QType.QInt4, 1e-18f)]
    [TestCase(CpuKernelPath.Vector512, QType.QInt4, 1e12f)]
    [TestCase(CpuKernelPath.Vector512, QType.QInt2, 1e-18f)]
    [TestCase(CpuKernelPath.Vector512, QType.QInt2, 1e12f)]
    [TestCase(CpuKernelPath.Vector256, QType.QInt4, 1e-18f)]
    [TestCase(CpuKernelPath.Vector256, QType.QInt4, 1e12f)]
    [TestCase(CpuKernelPath.Vector256, QType.QInt2, 1e-18f)]
    [TestCase(CpuKernelPath.Vector256, QType.QInt2, 1e12f)]
    public unsafe void Run_ExtremeActivationMagnitudes_MatchTheReference(CpuKernelPath path, QType qtype,
        float magnitude)
    {
        Require(path);
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(qtype), 48, 256, 3);
        Tensor x = Input(1, 256, 3) * magnitude;
        using var dot = new DotWeight(weight);
        float[] xs = x.data<float>().ToArray(), y = new float[48];
        fixed (float* xp = xs, yp = y)
        {
            using var rows = new DotGemvRows(xp, 1, dot);
            DotGemv.Run(path, dot, rows, 0, dot.Panels, yp, null);
        }
        Assert.That(RelativeError(y, Reference(x, weight, null)), Is.LessThanOrEqualTo(1e-5));
    }

    /// <summary>
    /// Factor i is 2^-(bit of input i's code in its column's dword) per the Dot layout (qint4: input i &lt; 4 in byte
    /// i's low nibble, 4 + i in its high nibble; qint2: input 4c + i in bits 2c of byte i), except the dword's top
    /// code (qint4 input 7, qint2 input 15), which the kernels shift down to bit 0; qint8's factors are 1. The bits
    /// are checked against the layout's own reader too (<see cref="DotFormats.Code"/>).
    /// </summary>
    [TestCase(QType.QInt4, new[] { 0, 8, 16, 24, 4, 12, 20, 28 })]
    [TestCase(QType.QInt2, new[] { 0, 8, 16, 24, 2, 10, 18, 26, 4, 12, 20, 28, 6, 14, 22, 30 })]
    public unsafe void Factors_UndoTheCodePositions(QType qtype, int[] bits)
    {
        DotFormat format = qtype == QType.QInt4 ? DotFormat.Int4 : DotFormat.Int2;
        int max = (1 << format.Bits()) - 1;
        byte* unit = stackalloc byte[DotFormats.UnitBytes];
        for (int i = 0; i < bits.Length; i++)
        {
            bool top = i == bits.Length - 1;
            Assert.That(DotGemvRows.Factor(format, i), Is.EqualTo(top ? 1f : 1.0f / (1L << bits[i])), $"input {i}");
            Assert.That(DotGemvRows.Factor(format, i + 16), Is.EqualTo(DotGemvRows.Factor(format, i)), $"input {i}");
            new Span<byte>(unit, DotFormats.UnitBytes).Clear();
            *(uint*)(unit + 4 * 5) = (uint)max << bits[i]; // column 5's dword
            Assert.That(format.Code(unit, 5, i), Is.EqualTo(max), $"input {i} at bit {bits[i]}");
            Assert.That(format.Code(unit, 4, i), Is.Zero);
        }
        Assert.That(DotGemvRows.Factor(DotFormat.Int8, 3), Is.EqualTo(1f));
    }
}
