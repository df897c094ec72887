using NUnit.Framework;
using Quanto.Kernels.Cpu;
using Quanto.Models.Llama;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

/// <summary>
/// The one-pass CPU forms of a decode step (RowsNorm, DecodeAttention) against libtorch float math written here from
/// the published equations: RMSNorm, rotate_half rotary positions, grouped-query softmax attention over every cached
/// position. The whole-model tests (LlamaTests, LlamaAttentionPathTests) run them too, against the float64 reference.
/// </summary>
public sealed class DecodeStepTests
{
    [TestCase(1L, 2048L)]
    [TestCase(3L, 37L)]
    [TestCase(16L, 8192L)]
    public void RowsNormEqualsTheEquation(long rows, long width)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor x = randn([rows, 1, width], generator: new Generator(1)).mul_(3);
        Tensor weight = randn([width], generator: new Generator(2));
        Assert.That(RowsNorm.Runs(x, weight), Is.True);
        Tensor actual = RowsNorm.Apply(x, weight, 1e-5);
        Tensor expected = x.to(ScalarType.Float64)
            .div(x.to(ScalarType.Float64).square().mean([-1], keepdim: true).add(1e-5).sqrt())
            .mul(weight.to(ScalarType.Float64));
        Assert.That(actual.shape, Is.EqualTo(x.shape));
        Assert.That(actual.to(ScalarType.Float64).sub(expected).abs().max().item<double>(),
            Is.LessThan(2e-6 * expected.abs().max().item<double>()));
    }

    [Test]
    public void RowsNormLeavesOtherInputsToLibtorch()
    {
        using var scope = NewDisposeScope();
        Tensor weight = ones(64);
        Assert.That(RowsNorm.Runs(ones(2, 64, dtype: ScalarType.BFloat16), weight), Is.False, "bf16 input");
        Assert.That(RowsNorm.Runs(ones(64, 2).t(), weight), Is.False, "not contiguous");
        Assert.That(RowsNorm.Runs(ones(RowsNorm.MaxElements / 64 + 1, 64), weight), Is.False, "a long prompt");
        Assert.That(RowsNorm.Runs(ones(2, 64, requires_grad: true), weight), Is.False, "a gradient to record");
        using (no_grad()) Assert.That(RowsNorm.Runs(ones(2, 64, requires_grad: true), weight), Is.True, "no_grad");
        Assert.That(RowsNorm.Runs(ones(2, 32), weight), Is.False, "width is not the weight's");
    }

    /// <summary>Steps of a batch of 2 through a cache that starts with room for 2 positions (so it grows), query heads
    /// on 2 key/value heads: groups of 2 (pairs of heads), 3 (a pair and one) and 1 (no pair); head_dim 6 (below a
    /// vector), 20 and 80 (vectors and a remainder), 64 and 128 (whole blocks of four vectors). Every step's output
    /// is the attention of its rotated query over all rotated keys so far, and the cache holds them. 300 steps at
    /// head_dim 64 cross <see cref="DecodeAttention.ParallelWork"/> (from 256 positions or fewer), where the
    /// key/value heads are shared out to the kernel threads; with one key/value head and 4 kernel threads each
    /// group is split among them too (4 + 2 and 4 + 1 heads).</summary>
    [TestCase(6L, 7, 4L, 2L, null)]
    [TestCase(20L, 7, 4L, 2L, null)]
    [TestCase(64L, 7, 4L, 2L, null)]
    [TestCase(80L, 9, 4L, 2L, null)]
    [TestCase(128L, 7, 4L, 2L, null)]
    [TestCase(64L, 11, 6L, 2L, null)]
    [TestCase(20L, 11, 6L, 2L, null)]
    [TestCase(64L, 9, 2L, 2L, null)]
    [TestCase(64L, 300, 4L, 2L, null)]
    [TestCase(64L, 300, 6L, 1L, 4)]
    [TestCase(64L, 300, 5L, 1L, 4)]
    public void DecodeAttentionEqualsTheEquations(long headDim, int steps, long heads, long kvHeads, int? threads)
    {
        int previousThreads = CpuKernels.Threads;
        if (threads is int count) CpuKernels.Threads = count;
        try
        {
            CheckDecodeAttention(headDim, steps, heads, kvHeads);
        }
        finally
        {
            CpuKernels.Threads = previousThreads;
        }
    }

    /// <summary>Query heads per chunk, hand-computed: the whole group while there are as many (sequence, key/value
    /// head) rows as threads; else split into even shares.</summary>
    [TestCase(8, 4, 2, 8)]
    [TestCase(8, 4, 16, 2)]
    [TestCase(32, 1, 2, 16)]
    [TestCase(6, 2, 4, 4)]
    [TestCase(5, 2, 4, 4)]
    [TestCase(7, 1, 4, 2)]
    [TestCase(3, 1, 2, 2)]
    [TestCase(1, 1, 8, 1)]
    [TestCase(2, 1, 64, 1)]
    public void HeadsPerChunkSplitsGroupsOnlyForIdleThreads(int groups, int rows, int threads, int expected) =>
        Assert.That(DecodeAttention.HeadsPerChunk(groups, rows, threads), Is.EqualTo(expected));

    private static void CheckDecodeAttention(long headDim, int steps, long heads, long kvHeads)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        const long batch = 2;
        Assert.That(steps < 256 || batch * heads * 256 * headDim >= DecodeAttention.ParallelWork,
            "the long case reaches the parallel path");
        var config = new LlamaConfig
        {
            VocabSize = 16, HiddenSize = heads * headDim, IntermediateSize = 8, NumHiddenLayers = 1,
            NumAttentionHeads = heads, NumKeyValueHeads = kvHeads, HeadDim = headDim,
            MaxPositionEmbeddings = Math.Max(64, steps),
            RmsNormEps = 1e-5, RopeTheta = 10000,
        };
        using var cache = new KvCache(config, capacity: 2);
        var keys = new List<Tensor>();
        var values = new List<Tensor>();
        var generator = new Generator(7);
        for (long position = 0; position < steps; position++)
        {
            using var stepScope = NewDisposeScope();
            Tensor q = randn([batch, 1, heads * headDim], generator: generator);
            Tensor k = randn([batch, 1, kvHeads * headDim], generator: generator);
            Tensor v = randn([batch, 1, kvHeads * headDim], generator: generator);
            (Tensor cos, Tensor sin) = Angles(position, headDim);
            long half = headDim / 2;
            Tensor signedSin = cat([sin.narrow(-1, 0, half).neg(), sin.narrow(-1, half, half)], -1);
            var context = new DecoderContext(cos, signedSin, null, cache);
            Assert.That(DecodeAttention.Runs(q, k, v, context), Is.True);
            Tensor actual = DecodeAttention.Step(q, k, v, context, 0, heads, kvHeads, headDim);

            // (batch, heads, 1, d) rotated by rotate_half; keys/values per key/value head, repeated per group.
            Tensor qh = Rotated(q.view(batch, 1, heads, headDim).transpose(1, 2), cos, sin);
            keys.Add(Rotated(k.view(batch, 1, kvHeads, headDim).transpose(1, 2), cos, sin).MoveToOuterDisposeScope());
            values.Add(v.view(batch, 1, kvHeads, headDim).transpose(1, 2).to(ScalarType.Float64)
                .MoveToOuterDisposeScope());
            Tensor allKeys = cat(keys, 2).repeat_interleave(heads / kvHeads, 1);
            Tensor allValues = cat(values, 2).repeat_interleave(heads / kvHeads, 1);
            Tensor scores = matmul(qh, allKeys.transpose(2, 3)).div(Math.Sqrt(headDim));
            Tensor expected = matmul(scores.softmax(-1), allValues).transpose(1, 2).reshape(batch, 1, heads * headDim);

            Assert.That(actual.shape, Is.EqualTo(new[] { batch, 1, heads * headDim }));
            Assert.That(actual.to(ScalarType.Float64).sub(expected).abs().max().item<double>(), Is.LessThan(1e-5),
                $"position {position}");
            Assert.That(cache.Length, Is.EqualTo(position + 1));
        }
        (Tensor cachedKeys, Tensor cachedValues) = cache.Reserve(0, batch, kvHeads, headDim, 0, ScalarType.Float32,
            CPU);
        Assert.That(cachedKeys.narrow(2, 0, steps).to(ScalarType.Float64).sub(cat(keys, 2)).abs().max()
            .item<double>(), Is.LessThan(1e-5), "rotated keys in the cache");
        Assert.That(cachedValues.narrow(2, 0, steps).to(ScalarType.Float64).sub(cat(values, 2)).abs().max()
            .item<double>(), Is.EqualTo(0), "values in the cache");
    }

    [Test]
    public void DecodeAttentionLeavesOtherStepsToLibtorch()
    {
        using var scope = NewDisposeScope();
        var config = new LlamaConfig
        {
            VocabSize = 16, HiddenSize = 8, IntermediateSize = 8, NumHiddenLayers = 1, NumAttentionHeads = 2,
            NumKeyValueHeads = 1, HeadDim = 4, MaxPositionEmbeddings = 64, RmsNormEps = 1e-5, RopeTheta = 10000,
        };
        using var cache = new KvCache(config);
        Tensor q = ones(1, 1, 8), kv = ones(1, 1, 4), cos = ones(1, 4), sin = ones(1, 4);
        Assert.That(DecodeAttention.Runs(q, kv, kv, new DecoderContext(cos, sin, null, null)), Is.False, "no cache");
        Assert.That(DecodeAttention.Runs(q, kv, kv, new DecoderContext(cos, sin, zeros(2, 1), cache)), Is.False,
            "a mask (sliding window)");
        Assert.That(DecodeAttention.Runs(ones(1, 2, 8), ones(1, 2, 4), ones(1, 2, 4),
            new DecoderContext(ones(2, 4), ones(2, 4), null, cache)), Is.False, "two new positions");
        Tensor half = q.to(ScalarType.BFloat16);
        Assert.That(DecodeAttention.Runs(half, kv, kv, new DecoderContext(cos, sin, null, cache)), Is.False, "bf16");
        Assert.That(DecodeAttention.Runs(q, kv, kv, new DecoderContext(cos, sin, null, cache)), Is.True);
    }

    /// <summary>cos/sin (1, d) of position <paramref name="position"/> for theta 10000, halves repeated (HF's
    /// layout).</summary>
    private static (Tensor Cos, Tensor Sin) Angles(long position, long headDim)
    {
        Tensor inverse = pow(10000.0, arange(0, headDim, 2, dtype: ScalarType.Float64).div(headDim)).reciprocal();
        Tensor angles = cat([inverse, inverse]).mul(position).unsqueeze(0);
        return (angles.cos().to(ScalarType.Float32), angles.sin().to(ScalarType.Float32));
    }

    /// <summary>x cos + rotate_half(x) sin in float64, rotate_half(x) = (-x2, x1).</summary>
    private static Tensor Rotated(Tensor x, Tensor cos, Tensor sin)
    {
        Tensor x64 = x.to(ScalarType.Float64);
        long half = x.shape[^1] / 2;
        Tensor rotated = cat([x64.narrow(-1, half, half).neg(), x64.narrow(-1, 0, half)], -1);
        return x64.mul(cos.to(ScalarType.Float64)).add(rotated.mul(sin.to(ScalarType.Float64)));
    }
}
