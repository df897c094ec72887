using NUnit.Framework;
using Quanto.Kernels.Cpu;
using Quanto.Kernels.Cpu.Float;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Cpu.Float;

/// <summary>
/// The float32 GEMV (lm_head-sized Linears at 1-3 rows): against F.linear in float64 and libtorch's float32
/// F.linear, on every SIMD path this CPU has, at K not a multiple of the 4-vector step (nor of 8), odd N, with and
/// without bias, on 1 and 2 threads; a weight read in place (a view into a larger tensor, an
/// embedding table); and the calls it declines.
/// </summary>
[TestFixture]
public class FloatGemvTests
{
    private static IEnumerable<CpuKernelPath> Paths() =>
        new[] { CpuKernelPath.Vector512, CpuKernelPath.Vector256 }.Where(CpuFeatures.IsSupported);

    // (K, N): 2053 = 32 steps of 4 zmm + 5 floats; 37 = one step of 4 ymm + 5 (a lone vector and a scalar tail); 8
    // a single ymm; 517 x 1030 at one row is past the threads' threshold (2^19 multiply-adds).
    private static readonly (int K, int N)[] Shapes = [(2053, 67), (37, 5), (8, 3), (16, 1), (517, 1030)];

    private static IEnumerable<TestCaseData> Cases() =>
        from path in Paths()
        from shape in Shapes
        from rows in new[] { 1, 2, 3 }
        from bias in new[] { false, true }
        select new TestCaseData(path, shape.K, shape.N, rows, bias);

    [TestCaseSource(nameof(Cases))]
    public void Linear_EqualsTheDoubleReferenceAndLibtorch(CpuKernelPath path, int k, int n, int rows, bool withBias)
    {
        var g = new Generator(11);
        using Tensor x = randn([rows, k], generator: g);
        using Tensor w = randn([n, k], generator: g);
        using Tensor? b = withBias ? randn([n], generator: g) : null;
        using Tensor expected = nn.functional.linear(x.to(ScalarType.Float64), w.to(ScalarType.Float64),
            b?.to(ScalarType.Float64));
        // Float32 sums in another order: within a few ulps of the sum of |terms| per output.
        using Tensor scale = x.abs().to(ScalarType.Float64).matmul(w.abs().to(ScalarType.Float64).t()).add(1);
        using Tensor libtorch = nn.functional.linear(x, w, b);

        foreach (bool threaded in new[] { false, true })
        {
            using Tensor y = FloatGemv.Linear(x, w, b, path, threaded);
            Assert.That(y.shape, Is.EqualTo(new long[] { rows, n }));
            Assert.That(y.dtype, Is.EqualTo(ScalarType.Float32));
            double error = (y.to(ScalarType.Float64) - expected).abs().div(scale).max().item<double>();
            Assert.That(error, Is.LessThan(4e-7 * Math.Sqrt(k)), $"threaded {threaded}");
            double vsLibtorch = (y - libtorch).abs().to(ScalarType.Float64).div(scale).max().item<double>();
            Assert.That(vsLibtorch, Is.LessThan(8e-7 * Math.Sqrt(k)), $"threaded {threaded}");
        }
    }

    [Test]
    public void OneAndTwoThreadsGiveTheSameBits()
    {
        var g = new Generator(5);
        using Tensor x = randn([3, 777], generator: g);
        using Tensor w = randn([2050, 777], generator: g);
        int before = CpuKernels.Threads;
        try
        {
            CpuKernels.Threads = 1;
            using Tensor one = FloatGemv.Linear(x, w, null);
            CpuKernels.Threads = 2;
            using Tensor two = FloatGemv.Linear(x, w, null);
            Assert.That(one.equal(two).all().item<bool>(), Is.True, "each output is summed by one thread in one order");
            using Tensor expected = nn.functional.linear(x.to(ScalarType.Float64), w.to(ScalarType.Float64));
            Assert.That((two.to(ScalarType.Float64) - expected).abs().max().item<double>(), Is.LessThan(1e-3));
        }
        finally
        {
            CpuKernels.Threads = before;
        }
    }

    [Test]
    public void ReadsTheWeightInPlace_AViewAndAnEmbeddingTable()
    {
        var g = new Generator(3);
        using Tensor big = randn([300, 130], generator: g);
        using Tensor view = big.narrow(0, 17, 201); // contiguous, at a storage offset
        using Tensor x = randn([1, 1, 130], generator: g);
        using Tensor y = FloatGemv.Linear(x, view, null);
        Assert.That(y.shape, Is.EqualTo(new long[] { 1, 1, 201 }));
        using Tensor expected = nn.functional.linear(x.to(ScalarType.Float64), view.to(ScalarType.Float64));
        Assert.That((y.to(ScalarType.Float64) - expected).abs().max().item<double>(), Is.LessThan(1e-4));

        using var embedding = nn.Embedding(97, 48);
        using Tensor h = randn([2, 48], generator: g);
        using var noGrad = no_grad();
        using Tensor tied = FloatGemv.Linear(h, embedding.weight!, null);
        using Tensor reference = nn.functional.linear(h.to(ScalarType.Float64), embedding.weight!.to(ScalarType.Float64));
        Assert.That((tied.to(ScalarType.Float64) - reference).abs().max().item<double>(), Is.LessThan(1e-4));
    }

    [Test]
    public void ANonContiguousInputIsRead()
    {
        var g = new Generator(9);
        using Tensor columns = randn([40, 2], generator: g);
        using Tensor x = columns.t(); // (2, 40), not contiguous
        using Tensor w = randn([9, 40], generator: g);
        using Tensor y = FloatGemv.Linear(x, w, null);
        using Tensor expected = nn.functional.linear(x.to(ScalarType.Float64), w.to(ScalarType.Float64));
        Assert.That((y.to(ScalarType.Float64) - expected).abs().max().item<double>(), Is.LessThan(1e-4));
    }

    [Test]
    public void Fits_DeclinesWhatTheKernelCannotRun()
    {
        using Tensor w = randn(64, 32);
        using Tensor x = randn(1, 32);
        Assert.That(FloatGemv.Fits(x, w, null), Is.True);
        Assert.That(FloatGemv.Fits(randn(4, 32), w, null), Is.False, "4 rows: libtorch's GEMM");
        Assert.That(FloatGemv.Fits(randn(1, 31), w, null), Is.False, "K mismatch");
        Assert.That(FloatGemv.Fits(x.to(ScalarType.Float64), w.to(ScalarType.Float64), null), Is.False, "float64");
        Assert.That(FloatGemv.Fits(x.to(ScalarType.BFloat16), w, null), Is.False, "bf16 input");
        Assert.That(FloatGemv.Fits(x, randn(32, 64).t(), null), Is.False, "a transposed weight");
        Assert.That(FloatGemv.Fits(x, w, randn(63)), Is.False, "bias length");
        using Tensor trained = randn(64, 32).requires_grad_();
        Assert.That(FloatGemv.Fits(x, trained, null), Is.False, "autograd would lose the graph");
        using (no_grad()) Assert.That(FloatGemv.Fits(x, trained, null), Is.True, "without gradients it runs");
        Assert.Throws<ArgumentException>(() => FloatGemv.Linear(randn(4, 32), w, null));
    }

    [Test]
    public void Runs_OnlyForLargeWeightsAndWhenEnabled()
    {
        using Tensor w = randn(64, 32);
        using Tensor x = randn(1, 32);
        long before = FloatGemv.MinWeightBytes;
        bool enabled = FloatGemv.Enabled;
        try
        {
            FloatGemv.MinWeightBytes = 64 * 32 * 4 + 1;
            Assert.That(FloatGemv.Runs(x, w, null), Is.False, "under the size threshold");
            FloatGemv.MinWeightBytes = 64 * 32 * 4;
            Assert.That(FloatGemv.Runs(x, w, null), Is.EqualTo(FloatGemv.BestPath != CpuKernelPath.Scalar));
            FloatGemv.Enabled = false;
            Assert.That(FloatGemv.Runs(x, w, null), Is.False, "switched off");
        }
        finally
        {
            FloatGemv.MinWeightBytes = before;
            FloatGemv.Enabled = enabled;
        }
    }
}
