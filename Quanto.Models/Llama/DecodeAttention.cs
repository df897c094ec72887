using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Quanto.Kernels.Cpu;
using TorchSharp;
using static TorchSharp.torch;

namespace Quanto.Models.Llama;

/// <summary>
/// One decode step of <see cref="LlamaAttention"/> (a single new position per sequence, nothing masked, float32 on
/// the CPU) in one pass over raw memory: rotary positions on the new query and key, the key and value written into
/// the KV cache in place, and grouped-query attention over every cached position, written straight into the
/// (batch, 1, heads x head_dim) layout o_proj reads.
/// </summary>
/// <remarks>
/// The same arithmetic as the libtorch path (x cos + roll(x) signed_sin, scores q·k scaled after the dot product,
/// softmax in float32, probabilities times values), which it replaces by one call: that path is some 25 libtorch ops
/// per layer (two rotations, two cache copies, views, two matmuls, softmax), each a few microseconds of dispatch for
/// a few thousand multiply-adds. Measured on a 2 vCPU Zen 4 with the TinyLlama-1.1B shape (22 layers), int4
/// weights: rotation, cache and attention took 3.6 ms of a 41 ms decode step. The attention proper works a key/value
/// head at a time, so the cached keys and values are read once per group of query heads instead of once per query
/// head, two query heads and four positions per tile of fused multiply-adds, with vector exponentials, and the
/// key/value heads are shared out to the kernel threads from <see cref="ParallelWork"/>: at 2048 cached positions
/// a layer's step went from 1.27 ms (a query head at a time, one thread) to 0.24 ms (Quanto.Bench --attention).
/// The results differ from libtorch's only in rounding (summation order, fused products; the tests hold them to
/// 1e-5).
/// </remarks>
internal static unsafe class DecodeAttention
{
    /// <summary>
    /// True when <see cref="Step"/> computes this step: one new position, no mask, float32 contiguous CPU
    /// projections and rotary rows, and no gradient to record.
    /// </summary>
    internal static bool Runs(Tensor q, Tensor k, Tensor v, DecoderContext context) =>
        context is { Mask: null, Cache: not null } && q.size(1) == 1 &&
        IsPlain(q) && IsPlain(k) && IsPlain(v) && IsPlain(context.Cos) && IsPlain(context.Sin) &&
        !(is_grad_enabled() && (q.requires_grad || k.requires_grad || v.requires_grad));

    private static bool IsPlain(Tensor t) =>
        t.dtype == ScalarType.Float32 && t.device_type == DeviceType.CPU && t.is_contiguous();

    /// <summary>
    /// Rotates and caches the step's key and value (batch, 1, kv_heads x head_dim) at the cache's next position of
    /// layer <paramref name="layer"/>, and returns the attended values (batch, 1, heads x head_dim) of the rotated
    /// query (batch, 1, heads x head_dim).
    /// </summary>
    internal static Tensor Step(Tensor q, Tensor k, Tensor v, DecoderContext context, int layer, long heads,
        long kvHeads, long headDim)
    {
        KvCache cache = context.Cache!;
        long batch = q.size(0);
        long position = cache.LayerLength(layer);
        (Tensor keys, Tensor values) = cache.Reserve(layer, batch, kvHeads, headDim, 1, q.dtype, q.device);
        long capacity = keys.size(2);
        Tensor output = empty([batch, 1, heads * headDim], dtype: ScalarType.Float32);
        int d = checked((int)headDim), total = checked((int)(position + 1));
        int groups = checked((int)(heads / kvHeads)), rows = checked((int)(batch * kvHeads));
        bool parallel = batch * heads * total * d >= ParallelWork;
        int perChunk = HeadsPerChunk(groups, rows, parallel ? CpuParallel.Threads : 1);
        // Per key/value head: its group's rotated queries, then their scores, each row rounded up to cache lines.
        long queryStride = (d + 15) & ~15L, scoreStride = (total + 15) & ~15L;
        long chunkStride = groups * (queryStride + scoreStride);
        float* scratch = (float*)NativeMemory.AlignedAlloc((nuint)(rows * chunkStride * sizeof(float)), 64);
        try
        {
            float* kData = TensorMemory.Floats(k), vData = TensorMemory.Floats(v);
            float* cos = TensorMemory.Floats(context.Cos), sin = TensorMemory.Floats(context.Sin);
            float* keyData = TensorMemory.Floats(keys), valueData = TensorMemory.Floats(values);
            // The step's keys (rotated) and values into the cache first: every query head of a group reads them.
            for (long row = 0; row < rows; row++)
            {
                float* cached = keyData + (row * capacity + position) * d;
                Rotate(kData + row * d, cos, sin, d, cached);
                new Span<float>(vData + row * d, d)
                    .CopyTo(new Span<float>(valueData + (row * capacity + position) * d, d));
            }
            var job = new AttendJob(TensorMemory.Floats(q), keyData, valueData, TensorMemory.Floats(output), cos, sin,
                scratch, chunkStride, queryStride, scoreStride, groups, perChunk, capacity, d, total,
                (float)(1 / Math.Sqrt(headDim)));
            CpuParallel.Run(job, rows * job.Parts, parallel);
        }
        finally
        {
            NativeMemory.AlignedFree(scratch);
        }
        cache.Advance(layer, 1);
        GC.KeepAlive(q);
        GC.KeepAlive(k);
        GC.KeepAlive(v);
        GC.KeepAlive(keys);
        GC.KeepAlive(values);
        return output;
    }

    /// <summary>
    /// From this many multiply-adds of q·K (query heads x cached positions x head_dim), a step's key/value heads are
    /// shared out to the kernel threads (<see cref="CpuParallel"/>); below it the handoff costs more than it saves.
    /// 2^17 is TinyLlama-1.1B's 32 heads x 64 dims at 64 positions. Measured on a 2 vCPU Zen 4 at that shape: with
    /// the worker spinning between calls (a quantized model's decode steps) two threads win from 16 positions (7 us
    /// against 9 a layer), but a worker that has gone to sleep takes 15-28 us to wake and finish its share, more than
    /// a 16-position step costs on one thread.
    /// </summary>
    internal const long ParallelWork = 1 << 17;

    /// <summary>
    /// Query heads of a group per chunk: the whole group, unless there are fewer (sequence, key/value head) rows
    /// than <paramref name="threads"/> (one key/value head, or a machine with more cores than the model has
    /// key/value heads); then the group is split so every thread gets a share, in an even number of heads where the
    /// group has more than one (the score and value tiles take two heads at a time).
    /// </summary>
    internal static int HeadsPerChunk(int groups, int rows, int threads)
    {
        int parts = Math.Clamp((threads + rows - 1) / Math.Max(1, rows), 1, groups);
        int perChunk = (groups + parts - 1) / parts;
        return perChunk > 1 && perChunk % 2 == 1 && perChunk < groups ? perChunk + 1 : perChunk;
    }

    /// <summary>Cached positions per block: the block's keys or values (about 16 KB) stay in L1 while every query
    /// head of the group reads them.</summary>
    private static int BlockPositions(int d) => Math.Max(8, 4096 / Math.Max(1, d));

    /// <summary>
    /// One chunk per (sequence, key/value head) and share of its group's query heads (<see cref="HeadsPerChunk"/>):
    /// rotate those queries; their scores against every cached key, a block of positions at a time for all of them
    /// (each key read from memory once, not once per query head); softmax per query head; the weighted sum of the
    /// values in the same blocks, divided by the sum of the exponentials at the end.
    /// </summary>
    private sealed class AttendJob(float* q, float* keys, float* values, float* output, float* cos, float* sin,
        float* scratch, long chunkStride, long queryStride, long scoreStride, int groups, int perChunk,
        long capacity, int d, int total, float scale) : CpuJob
    {
        /// <summary>Chunks per (sequence, key/value head) row: its group in shares of <c>perChunk</c> heads.</summary>
        public int Parts { get; } = (groups + perChunk - 1) / perChunk;

        public override void Run(int chunk)
        {
            int row = chunk / Parts, first = chunk % Parts * perChunk;
            int count = Math.Min(groups - first, perChunk);
            // This chunk's heads first..first+count of the row's group; its queries, scores and outputs are theirs.
            float* queries = scratch + row * chunkStride + first * queryStride;
            float* scores = scratch + row * chunkStride + groups * queryStride + first * scoreStride;
            float* cachedKeys = keys + row * capacity * d, cachedValues = values + row * capacity * d;
            float* outputs = output + ((long)row * groups + first) * d; // query head h = kv * groups + g
            float* input = q + ((long)row * groups + first) * d;
            Attend(input, queries, scores, cachedKeys, cachedValues, outputs, count);
        }

        /// <summary>The attention of <paramref name="heads"/> consecutive query heads of one group.</summary>
        private void Attend(float* input, float* queries, float* scores, float* cachedKeys, float* cachedValues,
            float* outputs, int heads)
        {
            float* max = stackalloc float[heads];
            for (int g = 0; g < heads; g++)
            {
                Rotate(input + (long)g * d, cos, sin, d, queries + g * queryStride);
                max[g] = float.NegativeInfinity;
                new Span<float>(outputs + (long)g * d, d).Clear();
            }
            int block = BlockPositions(d);
            for (int t0 = 0; t0 < total; t0 += block)
            {
                int end = Math.Min(total, t0 + block);
                int g = 0;
                for (; g + 1 < heads; g += 2)
                {
                    ScorePair(queries + g * queryStride, queries + (g + 1) * queryStride, cachedKeys, t0, end, d,
                        scale, scores + g * scoreStride, scores + (g + 1) * scoreStride, max + g);
                }
                if (g < heads)
                {
                    ScoreOne(queries + g * queryStride, cachedKeys, t0, end, d, scale, scores + g * scoreStride,
                        max + g);
                }
            }
            float* inverse = max; // each head's maximum is read once, then its slot holds 1 / sum
            for (int g = 0; g < heads; g++)
                inverse[g] = 1 / FloatSpans.ExpShifted(scores + g * scoreStride, total, max[g]);
            for (int t0 = 0; t0 < total; t0 += block)
            {
                int positions = Math.Min(total, t0 + block) - t0;
                float* block0 = cachedValues + (long)t0 * d;
                int g = 0;
                for (; g + 1 < heads; g += 2)
                {
                    AddWeightedPair(scores + g * scoreStride + t0, scores + (g + 1) * scoreStride + t0, block0,
                        positions, d, outputs + (long)g * d, outputs + (long)(g + 1) * d);
                }
                if (g < heads)
                    AddWeighted(scores + g * scoreStride + t0, block0, positions, d, outputs + (long)g * d, d);
            }
            for (int g = 0; g < heads; g++) Scale(outputs + (long)g * d, d, inverse[g]);
        }
    }

    /// <summary>y = x cos + roll(x, d/2) signed_sin, each product rounded to float32 before the sum (as libtorch's
    /// mul, mul_ and add_ do).</summary>
    private static void Rotate(float* x, float* cos, float* signedSin, int d, float* y)
    {
        int half = d / 2;
        for (int i = 0; i < d; i++)
        {
            float straight = x[i] * cos[i];
            float rolled = x[i < half ? i + half : i - half] * signedSin[i];
            y[i] = straight + rolled;
        }
    }

    /// <summary>Scores of one query head against keys [t0, end), scaled, into <paramref name="row"/>; raises
    /// <paramref name="max"/>[0] to their maximum.</summary>
    private static void ScoreOne(float* query, float* keys, int t0, int end, int d, float scale, float* row, float* max)
    {
        float top = max[0];
        for (int t = t0; t < end; t++)
        {
            float score = FloatSpans.FusedDot(query, keys + (long)t * d, d) * scale;
            row[t] = score;
            if (score > top) top = score;
        }
        max[0] = top;
    }

    /// <summary>
    /// <see cref="ScoreOne"/> for two query heads of a group at once, four positions at a time: each vector of a key
    /// row is loaded once for both heads, and each vector of the queries once for four keys (8 accumulators, 14
    /// loads and multiply-adds per 8 products, against 3 per product one by one). Head dimensions that are not whole
    /// vectors, and the last positions, go one by one.
    /// </summary>
    private static void ScorePair(float* qa, float* qb, float* keys, int t0, int end, int d, float scale, float* ra,
        float* rb, float* max)
    {
        int w = Vector<float>.Count, t = t0;
        float topA = max[0], topB = max[1];
        if (Vector.IsHardwareAccelerated && d % w == 0)
        {
            for (; t + 4 <= end; t += 4)
            {
                float* k0 = keys + (long)t * d, k1 = k0 + d, k2 = k1 + d, k3 = k2 + d;
                Vector<float> a0 = default, a1 = default, a2 = default, a3 = default;
                Vector<float> b0 = default, b1 = default, b2 = default, b3 = default;
                for (int i = 0; i < d; i += w)
                {
                    Vector<float> x = Load(qa + i), y = Load(qb + i);
                    Vector<float> c0 = Load(k0 + i), c1 = Load(k1 + i), c2 = Load(k2 + i), c3 = Load(k3 + i);
                    a0 = Vector.FusedMultiplyAdd(x, c0, a0);
                    a1 = Vector.FusedMultiplyAdd(x, c1, a1);
                    a2 = Vector.FusedMultiplyAdd(x, c2, a2);
                    a3 = Vector.FusedMultiplyAdd(x, c3, a3);
                    b0 = Vector.FusedMultiplyAdd(y, c0, b0);
                    b1 = Vector.FusedMultiplyAdd(y, c1, b1);
                    b2 = Vector.FusedMultiplyAdd(y, c2, b2);
                    b3 = Vector.FusedMultiplyAdd(y, c3, b3);
                }
                topA = Keep(ra, t, Vector.Sum(a0) * scale, Vector.Sum(a1) * scale, Vector.Sum(a2) * scale,
                    Vector.Sum(a3) * scale, topA);
                topB = Keep(rb, t, Vector.Sum(b0) * scale, Vector.Sum(b1) * scale, Vector.Sum(b2) * scale,
                    Vector.Sum(b3) * scale, topB);
            }
        }
        max[0] = topA;
        max[1] = topB;
        if (t < end)
        {
            ScoreOne(qa, keys, t, end, d, scale, ra, max);
            ScoreOne(qb, keys, t, end, d, scale, rb, max + 1);
        }
    }

    /// <summary>Stores four scores at row[t..t+4) and returns the running maximum.</summary>
    private static float Keep(float* row, int t, float s0, float s1, float s2, float s3, float top)
    {
        row[t] = s0;
        row[t + 1] = s1;
        row[t + 2] = s2;
        row[t + 3] = s3;
        return MathF.Max(MathF.Max(MathF.Max(top, s0), MathF.Max(s1, s2)), s3);
    }

    /// <summary><see cref="AddWeighted"/> for two query heads of a group at once: each vector of a value row is loaded
    /// once for both (blocks of four vectors, eight accumulators in registers).</summary>
    private static void AddWeightedPair(float* wa, float* wb, float* values, int count, int d, float* oa, float* ob)
    {
        int w = Vector<float>.Count, i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i + 4 * w <= d; i += 4 * w)
            {
                float* x = oa + i, y = ob + i;
                Vector<float> a0 = Load(x), a1 = Load(x + w), a2 = Load(x + 2 * w), a3 = Load(x + 3 * w);
                Vector<float> b0 = Load(y), b1 = Load(y + w), b2 = Load(y + 2 * w), b3 = Load(y + 3 * w);
                for (int t = 0; t < count; t++)
                {
                    float* v = values + (long)t * d + i;
                    var p = new Vector<float>(wa[t]);
                    var r = new Vector<float>(wb[t]);
                    Vector<float> v0 = Load(v), v1 = Load(v + w), v2 = Load(v + 2 * w), v3 = Load(v + 3 * w);
                    a0 = Vector.FusedMultiplyAdd(p, v0, a0);
                    a1 = Vector.FusedMultiplyAdd(p, v1, a1);
                    a2 = Vector.FusedMultiplyAdd(p, v2, a2);
                    a3 = Vector.FusedMultiplyAdd(p, v3, a3);
                    b0 = Vector.FusedMultiplyAdd(r, v0, b0);
                    b1 = Vector.FusedMultiplyAdd(r, v1, b1);
                    b2 = Vector.FusedMultiplyAdd(r, v2, b2);
                    b3 = Vector.FusedMultiplyAdd(r, v3, b3);
                }
                Store(a0, x);
                Store(a1, x + w);
                Store(a2, x + 2 * w);
                Store(a3, x + 3 * w);
                Store(b0, y);
                Store(b1, y + w);
                Store(b2, y + 2 * w);
                Store(b3, y + 3 * w);
            }
        }
        if (i < d)
        {
            AddWeighted(wa, values + i, count, d, oa + i, d - i);
            AddWeighted(wb, values + i, count, d, ob + i, d - i);
        }
    }

    /// <summary>output[0..width) += Σ_t weights[t] values[t d + 0..width) over <paramref name="count"/> value rows
    /// <paramref name="d"/> apart: blocks of four vectors with eight accumulators in registers (even and odd
    /// positions apart), then single vectors, then the remainder.</summary>
    private static void AddWeighted(float* weights, float* values, int count, int d, float* output, int width)
    {
        int w = Vector<float>.Count, i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i + 4 * w <= width; i += 4 * w)
            {
                float* o = output + i;
                Vector<float> a0 = Load(o), a1 = Load(o + w), a2 = Load(o + 2 * w), a3 = Load(o + 3 * w);
                Vector<float> b0 = default, b1 = default, b2 = default, b3 = default;
                int t = 0;
                for (; t + 1 < count; t += 2)
                {
                    float* even = values + (long)t * d + i, odd = even + d;
                    var p = new Vector<float>(weights[t]);
                    var r = new Vector<float>(weights[t + 1]);
                    a0 = Vector.FusedMultiplyAdd(p, Load(even), a0);
                    a1 = Vector.FusedMultiplyAdd(p, Load(even + w), a1);
                    a2 = Vector.FusedMultiplyAdd(p, Load(even + 2 * w), a2);
                    a3 = Vector.FusedMultiplyAdd(p, Load(even + 3 * w), a3);
                    b0 = Vector.FusedMultiplyAdd(r, Load(odd), b0);
                    b1 = Vector.FusedMultiplyAdd(r, Load(odd + w), b1);
                    b2 = Vector.FusedMultiplyAdd(r, Load(odd + 2 * w), b2);
                    b3 = Vector.FusedMultiplyAdd(r, Load(odd + 3 * w), b3);
                }
                if (t < count)
                {
                    float* last = values + (long)t * d + i;
                    var p = new Vector<float>(weights[t]);
                    a0 = Vector.FusedMultiplyAdd(p, Load(last), a0);
                    a1 = Vector.FusedMultiplyAdd(p, Load(last + w), a1);
                    a2 = Vector.FusedMultiplyAdd(p, Load(last + 2 * w), a2);
                    a3 = Vector.FusedMultiplyAdd(p, Load(last + 3 * w), a3);
                }
                Store(a0 + b0, o);
                Store(a1 + b1, o + w);
                Store(a2 + b2, o + 2 * w);
                Store(a3 + b3, o + 3 * w);
            }
            for (; i + w <= width; i += w)
            {
                Vector<float> sum = Load(output + i);
                for (int t = 0; t < count; t++)
                    sum = Vector.FusedMultiplyAdd(new Vector<float>(weights[t]), Load(values + (long)t * d + i), sum);
                Store(sum, output + i);
            }
        }
        for (; i < width; i++)
        {
            float sum = output[i];
            for (int t = 0; t < count; t++) sum = MathF.FusedMultiplyAdd(weights[t], values[(long)t * d + i], sum);
            output[i] = sum;
        }
    }

    /// <summary>x[0..n) *= by.</summary>
    private static void Scale(float* x, int n, float by)
    {
        int w = Vector<float>.Count, i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i + w <= n; i += w) Store(Load(x + i) * by, x + i);
        }
        for (; i < n; i++) x[i] *= by;
    }

    private static Vector<float> Load(float* p) => Unsafe.ReadUnaligned<Vector<float>>(p);

    private static void Store(Vector<float> v, float* p) => Unsafe.WriteUnaligned(p, v);
}
