using System.Diagnostics;
using Quanto.Models.Bert;
using Quanto.Models.HuggingFace;
using Quanto.Models.Llama;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Bench;

/// <summary>
/// Whole-model rows (issue #15), random weights at real shapes, no download: a Llama of TinyLlama-1.1B's shape
/// (prefill tokens/s at 128 tokens, decode tokens/s, decode bytes per token / time as % of the read bandwidth probed
/// just before) and a BERT-base encoder (sentences/s at batch 1 and 32). One configuration is built at a time (on
/// the meta device, each Linear given random weights and quantized before the next one exists, so the float32
/// 1.1B model's 4.4 GB is the peak only for the fp32 row) and disposed before the next.
/// </summary>
internal static class ModelBench
{
    internal static LlamaConfig TinyLlamaShape { get; } = new()
    {
        VocabSize = 32000, HiddenSize = 2048, IntermediateSize = 5632, NumHiddenLayers = 22, NumAttentionHeads = 32,
        NumKeyValueHeads = 4, HeadDim = 64, MaxPositionEmbeddings = 2048, RmsNormEps = 1e-5, RopeTheta = 10000,
    };

    private static readonly (string Name, ScalarType DType, QType? Weights, QType? Activations)[] Formats =
    [
        ("fp32", ScalarType.Float32, null, null),
        ("bf16", ScalarType.BFloat16, null, null),
        ("int8", ScalarType.Float32, QType.QInt8, null),
        ("int4", ScalarType.Float32, QType.QInt4, null),
        ("int2", ScalarType.Float32, QType.QInt2, null),
        ("w8a8", ScalarType.Float32, QType.QInt8, QType.QInt8),
    ];

    public static void Run(bool quick)
    {
        LlamaConfig llama = quick ? TinyLlamaShape with { NumHiddenLayers = 2 } : TinyLlamaShape;
        Console.WriteLine($"Llama, TinyLlama-1.1B shape ({llama.NumHiddenLayers} layers, hidden 2048, FFN 5632, " +
                          "32 heads / 4 KV heads, vocab 32000), random weights; lm_head stays float " +
                          "(optimum-quanto's default):");
        Console.WriteLine("| format | prefill tokens/s (128) | decode tokens/s | MB read / token | GB/s | " +
                          "% bandwidth | decode vs bf16 |");
        Console.WriteLine("|---|--:|--:|--:|--:|--:|--:|");
        double? bf16 = null;
        foreach (var (name, dtype, weights, activations) in Formats)
        {
            double bandwidth = MemoryBandwidth.MeasureGBps();
            using Llama model = RandomLlama(llama, dtype, weights, activations);
            (double prefill, double decode, long bytes) = MeasureLlama(model);
            if (name == "bf16") bf16 = decode;
            double gbps = bytes * decode / 1e9;
            Console.WriteLine($"| {name} | {prefill:F1} | {decode:F2} | {bytes / 1e6:F0} | {gbps:F1} | " +
                              $"{100 * gbps / bandwidth:F1} (of {bandwidth:F1}) | " +
                              $"{(bf16 is double b ? $"{decode / b:F2}x" : "-")} |");
        }

        BertConfig bert = quick ? new BertConfig { NumHiddenLayers = 2 } : new BertConfig();
        Console.WriteLine();
        Console.WriteLine($"BERT-base shape ({bert.NumHiddenLayers} x 768, FFN 3072), random weights, " +
                          "32-token sentences:");
        Console.WriteLine("| format | sentences/s batch 1 | sentences/s batch 32 |");
        Console.WriteLine("|---|--:|--:|");
        foreach (var (name, dtype, weights, activations) in Formats.Where(f => f.Name != "int2"))
        {
            using Bert model = RandomBert(bert, dtype, weights, activations);
            Console.WriteLine($"| {name} | {SentencesPerSecond(model, 1, 32, quick ? 3 : 15):F1} | " +
                              $"{SentencesPerSecond(model, 32, 32, quick ? 1 : 3):F1} |");
        }
    }

    private static (double Prefill, double Decode, long Bytes) MeasureLlama(Llama model)
    {
        using var noGrad = no_grad();
        var generator = new Generator(7);
        using Tensor prompt = randint(3, model.Config.VocabSize, [1, 128], generator: generator);
        double prefillMs = MedianMs(3, () =>
        {
            using KvCache cache = model.NewCache(160);
            using var scope = NewDisposeScope();
            model.forward(prompt, cache);
        });
        using KvCache decodeCache = model.NewCache(64);
        using (NewDisposeScope()) model.forward(prompt.narrow(1, 0, 16), decodeCache);
        using Tensor token = prompt.narrow(1, 16, 1).clone();
        double decodeMs = MedianMs(16, () =>
        {
            using var scope = NewDisposeScope();
            model.forward(token, decodeCache);
        });
        // What one decode step reads: every weight but the embedding table, of which it gathers one row.
        Tensor embedding = model.state_dict()["model.embed_tokens.weight"];
        long bytes = Quantizer.ModelBytes(model) - embedding.NumberOfElements * embedding.ElementSize;
        return (128 / (prefillMs / 1e3), 1 / (decodeMs / 1e3), bytes);
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
        samples.Sort();
        return samples[samples.Count / 2];
    }

    private static Llama RandomLlama(LlamaConfig config, ScalarType dtype, QType? weights, QType? activations)
    {
        var model = new Llama(config, new Device(TorchSharp.DeviceType.META), dtype);
        Randomize(model, dtype, weights, activations,
            path => path.StartsWith("model.layers.", StringComparison.Ordinal));
        if (activations is not null) Calibrate(() => model.forward(ones(1, 8, dtype: ScalarType.Int64), null));
        return model;
    }

    private static Bert RandomBert(BertConfig config, ScalarType dtype, QType? weights, QType? activations)
    {
        var model = new Bert(config, new Device(TorchSharp.DeviceType.META), dtype);
        Randomize(model, dtype, weights, activations, path => path.StartsWith("encoder.", StringComparison.Ordinal));
        if (activations is not null)
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
    private static void Randomize(nn.Module model, ScalarType dtype, QType? weights, QType? activations,
        Func<string, bool> quantized)
    {
        Dictionary<string, nn.Module> modules = ParameterSlots.Modules(model);
        using var noGrad = no_grad();
        foreach ((string key, Parameter parameter) in model.named_parameters().ToList())
        {
            bool norm = key.EndsWith("norm.weight", StringComparison.OrdinalIgnoreCase) ||
                        key.Contains("LayerNorm.", StringComparison.Ordinal);
            Tensor value = norm ? ones(parameter.shape, dtype: dtype)
                : key.EndsWith(".bias", StringComparison.Ordinal) ? zeros(parameter.shape, dtype: dtype)
                : randn(parameter.shape, dtype: ScalarType.Float32).mul_(0.02).to(dtype);
            ParameterSlots.Assign(modules, key, value);
            string path = key[..key.LastIndexOf('.')];
            if (weights is null || !quantized(path) || modules[path] is not Linear linear || linear.bias is not null &&
                key.EndsWith(".weight", StringComparison.Ordinal))
            {
                continue;
            }
            Quanto.Models.Pretrained.ModelQuantizer.QuantizeAndFreeze(model, weights, activations, null,
                [path], null, null);
        }
    }
}
