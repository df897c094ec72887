using System.Diagnostics;
using Quanto.Kernels;
using Quanto.Models.Bert;
using Quanto.Models.HuggingFace;
using Quanto.Models.Llama;
using Quanto.Nn;
using Quanto.Quantization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Bench;

/// <summary>
/// Whole-model rows (issue #15), random weights at real shapes, no download: a Llama of TinyLlama-1.1B's shape
/// (prefill tokens/s at 128 tokens, decode tokens/s, decode bytes per token / time as % of the read bandwidth probed
/// just before) and a BERT-base encoder (sentences/s at batch 1 and 32). Each model is built on the meta device, each
/// Linear given random weights and quantized before the next one exists, so a float32 layer is alive only while it
/// is quantized. Decode is measured in interleaved rounds (every model once per round, in an order that rotates, a
/// bandwidth probe before each), since the VM's bandwidth moves within minutes: each row reports its median round.
/// The float32 1.1B model (4.4 GB) is measured alone first; the others are held together for the rounds.
/// </summary>
internal static class ModelBench
{
    internal static LlamaConfig TinyLlamaShape { get; } = new()
    {
        VocabSize = 32000, HiddenSize = 2048, IntermediateSize = 5632, NumHiddenLayers = 22, NumAttentionHeads = 32,
        NumKeyValueHeads = 4, HeadDim = 64, MaxPositionEmbeddings = 2048, RmsNormEps = 1e-5, RopeTheta = 10000,
    };

    /// <summary>A row: how the model is built. LmHead: also quantize lm_head (optimum-quanto's quantize without
    /// exclude does; its README excludes it). Dynamic: the run-time int8 activation mode of the quantized layers.
    /// HeadKernel false: a float32 lm_head runs libtorch's F.linear instead of Quanto's float GEMV (FloatGemv).
    /// IdlePrefetch false: the kernel worker does not prefetch the next GEMV's weight while it waits
    /// (CpuParallel.IdlePrefetch). A row with either switch off is a variant: the same model as the row before it,
    /// measured in the same rounds (the A/B of that switch).</summary>
    private sealed record Format(string Name, ScalarType DType, QType? Weights, QType? Activations,
        bool LmHead = false, DynamicActivations Dynamic = DynamicActivations.None, bool HeadKernel = true,
        bool IdlePrefetch = true)
    {
        public bool IsVariant => !HeadKernel || !IdlePrefetch;
    }

    private static readonly Format[] Formats =
    [
        new("fp32", ScalarType.Float32, null, null),
        new("bf16", ScalarType.BFloat16, null, null),
        new("int8", ScalarType.Float32, QType.QInt8, null),
        new("int4", ScalarType.Float32, QType.QInt4, null),
        new("int4 with lm_head on libtorch", ScalarType.Float32, QType.QInt4, null, HeadKernel: false),
        new("int4 without idle prefetch", ScalarType.Float32, QType.QInt4, null, IdlePrefetch: false),
        new("int2", ScalarType.Float32, QType.QInt2, null),
        new("w8a8", ScalarType.Float32, QType.QInt8, QType.QInt8),
        new("int4 dyn-a8", ScalarType.Float32, QType.QInt4, null, Dynamic: DynamicActivations.Int8),
        new("int4 + lm_head int4", ScalarType.Float32, QType.QInt4, null, LmHead: true),
        new("int4 dyn-a8 + lm_head int4", ScalarType.Float32, QType.QInt4, null, true, DynamicActivations.Int8),
    ];

    /// <param name="quick">2 layers, 1 round.</param>
    /// <param name="only">Comma-separated Llama row names to run (null: all, and the BERT rows); bf16, every row's
    /// baseline, always runs.</param>
    public static void Run(bool quick, string? only = null)
    {
        HashSet<string>? names = only?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .ToHashSet();
        if (names?.FirstOrDefault(n => Formats.All(f => f.Name != n)) is { } unknown)
        {
            throw new ArgumentException($"Unknown --models row '{unknown}'; the rows are " +
                $"{string.Join(", ", Formats.Select(f => f.Name))}.");
        }
        Format[] selected = Formats.Where(f => names is null || f.Name == "bf16" || names.Contains(f.Name)).ToArray();
        LlamaConfig llama = quick ? TinyLlamaShape with { NumHiddenLayers = 2 } : TinyLlamaShape;
        int rounds = quick ? 1 : 3;
        Console.WriteLine($"Llama, TinyLlama-1.1B shape ({llama.NumHiddenLayers} layers, hidden 2048, FFN 5632, " +
                          "32 heads / 4 KV heads, vocab 32000), random weights; lm_head stays float32 " +
                          "(optimum-quanto's default) unless the row says \"+ lm_head\"; decode: median of " +
                          $"{rounds} interleaved rounds of 16 tokens after a 16-token prompt:");
        Console.WriteLine("| format | prefill tokens/s (128) | decode tokens/s | MB read / token | GB/s | " +
                          "% bandwidth | decode vs bf16 |");
        Console.WriteLine("|---|--:|--:|--:|--:|--:|--:|");
        // Each row's model is held beside the bf16 one and measured with it in the same rounds, so "vs bf16" is a
        // ratio of the same minutes; at most two models (fp32's 4.4 GB + bf16's 2.2 GB) are alive at once.
        Format bf16Format = Formats.Single(f => f.Name == "bf16");
        using Llama bf16 = RandomLlama(llama, bf16Format);
        var rows = new Dictionary<Format, string>();
        var notes = new List<string>();
        for (int i = 0; i < Formats.Length; i++)
        {
            Format format = Formats[i];
            if (format == bf16Format || format.IsVariant) continue;
            List<Format> variants = Formats.Skip(i + 1).TakeWhile(f => f.IsVariant).Where(selected.Contains).ToList();
            bool withBase = selected.Contains(format);
            if (!withBase && variants.Count == 0) continue;
            using Llama model = RandomLlama(llama, format);
            List<Subject> subjects = [new(model), new(bf16), .. variants.Select(v => new Subject(model, v.HeadKernel, v.IdlePrefetch))];
            List<Decode> decodes = Decode.Interleaved(subjects, rounds);
            if (withBase) rows[format] = Row(format, Prefill(model), decodes[0], ReadBytes(model), decodes[0].Ratio(decodes[1]));
            for (int v = 0; v < variants.Count; v++)
            {
                Format variant = variants[v];
                Decode decode = decodes[2 + v];
                rows[variant] = Row(variant, Prefill(model, variant.HeadKernel), decode, ReadBytes(model),
                    decode.Ratio(decodes[1]));
                if (!variant.HeadKernel)
                {
                    notes.Add($"{format.Name}: {decodes[0].Ratio(decode):F2}x decode with lm_head on the float GEMV " +
                              "over libtorch's (median of the rounds' ratios); a 128-token prompt through Generate " +
                              $"(last-position logits only) {GeneratePrefill(model):F1} tokens/s against forward's " +
                              $"{Prefill(model):F1} (logits of every position).");
                }
                if (!variant.IdlePrefetch)
                {
                    notes.Add($"{format.Name}: {decodes[0].Ratio(decode):F2}x decode with the kernel worker " +
                              "prefetching the next GEMV's weight while it waits, over without (median of the " +
                              "rounds' ratios).");
                }
            }
        }
        Decode bf16Decode = Decode.Interleaved([new(bf16)], rounds)[0];
        rows[bf16Format] = Row(bf16Format, Prefill(bf16), bf16Decode, ReadBytes(bf16), 1);
        foreach (Format format in selected) Console.WriteLine(rows[format]);
        foreach (string note in notes) Console.WriteLine(note);
        if (names is null) BertRows(quick);
    }

    /// <summary>A model run as a row runs it: lm_head on the float GEMV where it applies, or on libtorch.</summary>
    private sealed record Subject(Llama Model, bool HeadKernel = true, bool IdlePrefetch = true);

    /// <summary>Runs <paramref name="action"/> with FloatGemv switched on or off, then puts the setting back.
    /// </summary>
    private static T WithHeadKernel<T>(bool headKernel, Func<T> action)
    {
        bool before = Quanto.Kernels.Cpu.Float.FloatGemv.Enabled;
        Quanto.Kernels.Cpu.Float.FloatGemv.Enabled = headKernel;
        try
        {
            return action();
        }
        finally
        {
            Quanto.Kernels.Cpu.Float.FloatGemv.Enabled = before;
        }
    }

    /// <summary>Prefill tokens/s of a 128-token prompt through Generate (which computes the last position's
    /// logits only), one new token: the median of 3 after a warm-up.</summary>
    private static double GeneratePrefill(Llama model)
    {
        long[] prompt = Prompt(model, 128).data<long>().ToArray();
        var options = new Quanto.Models.Generation.GenerationOptions { MaxNewTokens = 1, StopTokens = [] };
        model.Generate(prompt, options);
        var seconds = new List<double>();
        for (int i = 0; i < 3; i++) seconds.Add(model.Generate(prompt, options).PrefillSeconds);
        return 128 / Timing.Median(seconds);
    }

    private static string Row(Format format, double prefill, Decode decode, long bytes, double vsBf16)
    {
        double gbps = bytes * decode.TokensPerSecond / 1e9;
        return $"| {format.Name} | {prefill:F1} | {decode.TokensPerSecond:F2} | {bytes / 1e6:F0} | {gbps:F1} | " +
               $"{100 * decode.BandwidthShare:F1} (of {decode.ProbeGBps:F1}) | {vsBf16:F2}x |";
    }

    private static void BertRows(bool quick)
    {
        BertConfig bert = quick ? new BertConfig { NumHiddenLayers = 2 } : new BertConfig();
        Console.WriteLine();
        Console.WriteLine($"BERT-base shape ({bert.NumHiddenLayers} x 768, FFN 3072), random weights, " +
                          "32-token sentences:");
        Console.WriteLine("| format | sentences/s batch 1 | sentences/s batch 32 |");
        Console.WriteLine("|---|--:|--:|");
        foreach (Format format in Formats.Where(f => f.Name is not ("int2" or "int4 dyn-a8") && !f.LmHead))
        {
            using Bert model = RandomBert(bert, format);
            Console.WriteLine($"| {format.Name} | {SentencesPerSecond(model, 1, 32, quick ? 3 : 15):F1} | " +
                              $"{SentencesPerSecond(model, 32, 32, quick ? 1 : 3):F1} |");
        }
    }

    private static double Prefill(Llama model, bool headKernel = true) =>
        WithHeadKernel(headKernel, () => Prefill128(model));

    private static double Prefill128(Llama model)
    {
        using var noGrad = no_grad();
        using Tensor prompt = Prompt(model, 128);
        double ms = MedianMs(3, () =>
        {
            using KvCache cache = model.NewCache(160);
            using var scope = NewDisposeScope();
            model.forward(prompt, cache);
        });
        return 128 / (ms / 1e3);
    }

    /// <summary>What one decode step reads: every weight but the embedding table, of which it gathers one row.
    /// </summary>
    private static long ReadBytes(Llama model)
    {
        Tensor embedding = model.state_dict()["model.embed_tokens.weight"];
        return Quantizer.ModelBytes(model) - embedding.NumberOfElements * embedding.ElementSize;
    }

    private static Tensor Prompt(Llama model, long length) =>
        randint(3, model.Config.VocabSize, [1, length], generator: new Generator(7));

    /// <summary>One model's decode: tokens/s and the share of the probed bandwidth, medians over rounds.</summary>
    private sealed record Decode(double TokensPerSecond, double BandwidthShare, double ProbeGBps,
        IReadOnlyList<double> Speeds)
    {
        /// <summary>The median over rounds of this model's speed over the other's in the same round.</summary>
        public double Ratio(Decode other) => Timing.Median(Speeds.Zip(other.Speeds, (a, b) => a / b).ToList());

        /// <summary>Per round, every model (rotating order): a bandwidth probe, a 16-token prompt into a fresh
        /// cache, 4 untimed steps, then the median of 16 timed steps.</summary>
        public static List<Decode> Interleaved(IReadOnlyList<Subject> models, int rounds)
        {
            var speeds = new double[models.Count, rounds];
            var shares = models.Select(_ => new List<double>()).ToArray();
            var probes = models.Select(_ => new List<double>()).ToArray();
            long[] bytes = models.Select(s => ReadBytes(s.Model)).ToArray();
            using var noGrad = no_grad();
            for (int round = 0; round < rounds; round++)
            {
                for (int k = 0; k < models.Count; k++)
                {
                    int m = (k + round) % models.Count;
                    double probe = MemoryBandwidth.MeasureGBps();
                    Quanto.Kernels.Cpu.CpuParallel.IdlePrefetch = models[m].IdlePrefetch;
                    double tokensPerSecond;
                    try
                    {
                        tokensPerSecond = 1e3 / WithHeadKernel(models[m].HeadKernel, () => StepMs(models[m].Model));
                    }
                    finally
                    {
                        Quanto.Kernels.Cpu.CpuParallel.IdlePrefetch = true;
                    }
                    speeds[m, round] = tokensPerSecond;
                    shares[m].Add(bytes[m] * tokensPerSecond / 1e9 / probe);
                    probes[m].Add(probe);
                }
            }
            return models.Select((_, m) =>
            {
                List<double> own = Enumerable.Range(0, rounds).Select(r => speeds[m, r]).ToList();
                return new Decode(Timing.Median([.. own]), Timing.Median(shares[m]), Timing.Median(probes[m]), own);
            }).ToList();
        }

        private static double StepMs(Llama model)
        {
            using Tensor prompt = Prompt(model, 17);
            using KvCache cache = model.NewCache(64);
            using (NewDisposeScope()) model.forward(prompt.narrow(1, 0, 16), cache);
            using Tensor token = prompt.narrow(1, 16, 1).clone();
            for (int i = 0; i < 4; i++)
            {
                using var scope = NewDisposeScope();
                model.forward(token, cache);
            }
            var samples = new List<double>();
            for (int i = 0; i < 16; i++)
            {
                using var scope = NewDisposeScope();
                long start = Stopwatch.GetTimestamp();
                model.forward(token, cache);
                samples.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
            return Timing.Median(samples);
        }
    }

    private static double SentencesPerSecond(Bert model, int batch, int length, int calls)
    {
        using var noGrad = no_grad();
        using Tensor ids = randint(3, model.Config.VocabSize, [batch, length], generator: new Generator(3));
        using Tensor mask = ones_like(ids);
        double ms = MedianMs(calls, () =>
        {
            using Tensor y = model.SentenceEmbeddings(ids, mask);
        });
        return batch / (ms / 1e3);
    }

    /// <summary>One warm-up call, then the median of <paramref name="calls"/> timed ones.</summary>
    private static double MedianMs(int calls, Action action)
    {
        action();
        var samples = new List<double>();
        for (int i = 0; i < calls; i++)
        {
            long start = Stopwatch.GetTimestamp();
            action();
            samples.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        return Timing.Median(samples);
    }

    private static Llama RandomLlama(LlamaConfig config, Format format)
    {
        var model = new Llama(config, new Device(TorchSharp.DeviceType.META), format.DType);
        Randomize(model, format, path => path.StartsWith("model.layers.", StringComparison.Ordinal) ||
                                         format.LmHead && path == "lm_head");
        if (format.Activations is not null) Calibrate(() => model.forward(ones(1, 8, dtype: ScalarType.Int64), null));
        return model;
    }

    private static Bert RandomBert(BertConfig config, Format format)
    {
        var model = new Bert(config, new Device(TorchSharp.DeviceType.META), format.DType);
        Randomize(model, format, path => path.StartsWith("encoder.", StringComparison.Ordinal));
        if (format.Activations is not null)
        {
            using Tensor ids = ones(1, 8, dtype: ScalarType.Int64);
            Calibrate(() => model.SentenceEmbeddings(ids, ids));
        }
        return model;
    }

    private static void Calibrate(Func<Tensor> forward)
    {
        using var noGrad = no_grad();
        using var calibration = new Calibration();
        using var scope = NewDisposeScope();
        forward();
    }

    /// <summary>Random weights N(0, 0.02) and unit norms; each quantized Linear is quantized right after its
    /// weight exists (the float weight is then released), so at most one float layer is alive at a time.</summary>
    private static void Randomize(nn.Module model, Format format, Func<string, bool> quantized)
    {
        Dictionary<string, nn.Module> modules = ParameterSlots.Modules(model);
        using var noGrad = no_grad();
        foreach ((string key, Parameter parameter) in model.named_parameters().ToList())
        {
            bool norm = key.EndsWith("norm.weight", StringComparison.OrdinalIgnoreCase) ||
                        key.Contains("LayerNorm.", StringComparison.Ordinal);
            ScalarType dtype = format.DType;
            Tensor value = norm ? ones(parameter.shape, dtype: dtype)
                : key.EndsWith(".bias", StringComparison.Ordinal) ? zeros(parameter.shape, dtype: dtype)
                : randn(parameter.shape, dtype: ScalarType.Float32).mul_(0.02).to(dtype);
            ParameterSlots.Assign(modules, key, value);
            string path = key[..key.LastIndexOf('.')];
            if (format.Weights is null || !quantized(path) || modules[path] is not Linear linear ||
                linear.bias is not null && key.EndsWith(".weight", StringComparison.Ordinal))
            {
                continue;
            }
            // Max for 2/4 bits: the optimizer changes codes, not the bytes a step reads, and HQQ (their default)
            // would spend minutes refining 1.1 B random weights before anything is timed.
            Optimizer? optimizer = format.Weights.Value.Info().IsPacked ? new MaxOptimizer() : null;
            Quanto.Models.Pretrained.ModelQuantizer.QuantizeAndFreeze(model, format.Weights, format.Activations,
                optimizer, [path], null, null);
        }
        foreach (QModule module in Quantizer.QuantizedModules(model)) module.DynamicActivations = format.Dynamic;
    }
}
