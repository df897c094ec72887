using Quanto.Kernels.Cpu;
using Quanto.Models.Llama;
using static TorchSharp.torch;

namespace Quanto.Bench;

/// <summary>
/// <c>--attention</c>: one layer's attention in a decode step (TinyLlama-1.1B's 32 query heads on 4 key/value heads,
/// head_dim 64) as the cache grows, against libtorch's ops on the same cache. "one pass" is
/// <see cref="DecodeAttention.Step"/> as a decode step runs it (rotary on the new query and key, the key and value
/// written into the cache, grouped-query attention; the kernel threads from
/// <see cref="DecodeAttention.ParallelWork"/>), "one thread" the same with the kernel pool held to one thread,
/// "libtorch" the attention alone (no rotary, no cache write) as three libtorch ops over views of the same cache:
/// scores = q·Kᵀ scaled per key/value group (no copy of the keys), softmax, times V, on one torch thread (as a
/// quantized model's decode steps run libtorch, see LlamaModel.ThreadsForLayers) and on libtorch's own count. Each
/// cell is the median of 3 interleaved rounds, each the median of at least 50 calls (0.1 s) after half a second of
/// warm-up calls.
/// </summary>
internal static class AttentionBench
{
    private static readonly int[] Positions = [16, 64, 256, 1024, 2048];

    public static void Run(bool quick)
    {
        const long heads = 32, kvHeads = 4, headDim = 64, groups = heads / kvHeads;
        int[] positions = quick ? [16, 256] : Positions;
        LlamaConfig config = ModelBench.TinyLlamaShape with { NumHiddenLayers = 1 };
        Console.WriteLine("Decode attention, one layer of the TinyLlama-1.1B shape " +
                          $"({heads} query heads on {kvHeads} " +
                          $"key/value heads, head_dim {headDim}), float32; kernel threads {CpuKernels.Threads}, " +
                          $"torch threads {get_num_threads()}; microseconds, median of 3 interleaved rounds:");
        Console.WriteLine("| cached positions | one pass | one pass, one thread | libtorch, one thread | " +
                          $"libtorch, {get_num_threads()} threads | one pass vs the faster libtorch |");
        Console.WriteLine("|--:|--:|--:|--:|--:|--:|");
        using var noGrad = no_grad();
        var generator = new Generator(11);
        using Tensor q = randn([1, 1, heads * headDim], generator: generator);
        using Tensor k = randn([1, 1, kvHeads * headDim], generator: generator);
        using Tensor v = randn([1, 1, kvHeads * headDim], generator: generator);
        using Tensor cos = randn([1, headDim], generator: generator), sin = randn([1, headDim], generator: generator);
        foreach (int count in positions)
        {
            using var cache = new KvCache(config, count + 1);
            (Tensor keys, Tensor values) = cache.Reserve(0, 1, kvHeads, headDim, count, ScalarType.Float32, CPU);
            keys.normal_(generator: generator);
            values.normal_(generator: generator);
            cache.Advance(0, count - 1); // each timed step writes position count - 1 and is then taken back
            var context = new DecoderContext(cos, sin, null, cache);
            using Tensor query = q.view(1, kvHeads, groups, headDim);
            using Tensor cachedKeys = keys.narrow(2, 0, count), cachedValues = values.narrow(2, 0, count);
            double scale = 1 / Math.Sqrt(headDim);
            Action onePass = () =>
            {
                using Tensor output = DecodeAttention.Step(q, k, v, context, 0, heads, kvHeads, headDim);
                cache.Advance(0, -1);
            };
            Action libtorch = () =>
            {
                using var scope = NewDisposeScope();
                Tensor scores = matmul(query, cachedKeys.transpose(2, 3)).mul_(scale);
                matmul(scores.softmax(-1), cachedValues);
            };
            WarmUp(onePass);
            WarmUp(libtorch);
            Thread.Sleep(LibtorchIdle);
            var times = new List<double>[4];
            for (int i = 0; i < times.Length; i++) times[i] = [];
            for (int round = 0; round < 3; round++)
            {
                times[0].Add(MedianMicroseconds(onePass));
                int threads = CpuKernels.Threads;
                CpuKernels.Threads = 1;
                try
                {
                    times[1].Add(MedianMicroseconds(onePass));
                }
                finally
                {
                    CpuKernels.Threads = threads;
                }
                int torchThreads = get_num_threads();
                set_num_threads(1);
                try
                {
                    times[2].Add(MedianMicroseconds(libtorch));
                }
                finally
                {
                    set_num_threads(torchThreads);
                }
                times[3].Add(MedianMicroseconds(libtorch));
                Thread.Sleep(LibtorchIdle);
            }
            double[] median = times.Select(Timing.Median).ToArray();
            Console.WriteLine($"| {count} | {median[0]:F1} | {median[1]:F1} | {median[2]:F1} | {median[3]:F1} | " +
                              $"{Math.Min(median[2], median[3]) / median[0]:F2}x |");
        }
    }

    /// <summary>A pause after libtorch's multi-threaded calls, so its OpenMP threads have stopped spinning (and
    /// taking the second core) before the one-pass rows are timed.</summary>
    private const int LibtorchIdle = 300;

    /// <summary>Half a second of warm-up calls: long enough for tiered compilation to replace the first-call code.
    /// </summary>
    private static void WarmUp(Action action) => Timing.MedianMs(_ => action(), warmupSeconds: 0.5, measureSeconds: 0);

    /// <summary>The median of at least 50 calls (0.1 s), in microseconds.</summary>
    private static double MedianMicroseconds(Action action) =>
        1e3 * Timing.MedianMs(_ => action(), warmupSeconds: 0, measureSeconds: 0.1, minCalls: 50, warmupCalls: 5);
}
