using Microsoft.ML.Tokenizers;
using Quanto.Kernels;
using Quanto.Models.Generation;
using Quanto.Models.HuggingFace;
using Quanto.Models.Llama;
using Quanto.Models.Tokenizers;
using Quanto.Nn;
using Quanto.Quantization;
using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto.TinyLlama;

/// <summary>Sizes of one demo run.</summary>
internal sealed record DemoOptions(string Folder, int Steps = 500, int Hidden = 128, int Layers = 4, int Vocab = 512,
    int Batch = 8, int Window = 96, long Seed = 1, int EvalTokens = int.MaxValue);

/// <summary>One row of the demo: the dtype the checkpoint loads in, the weight and (calibrated) activation qtypes
/// given to <c>Llama.Quantize</c> (null weights: the float model as loaded), the run-time
/// <see cref="DynamicActivations"/> mode of the quantized layers, and whether their group scales and shifts are then
/// tuned to the float model's next-token distributions (<see cref="Llama.TuneScales"/>).</summary>
internal sealed record DemoConfiguration(string Name, ScalarType DType, QType? Weights = null,
    QType? Activations = null, DynamicActivations Dynamic = DynamicActivations.None, bool TunedScales = false);

/// <summary>One configuration's results. <paramref name="Bytes"/> is <see cref="Quantizer.ModelBytes(nn.Module)"/>
/// after the run, <paramref name="FloatCopyBytes"/> the part of it that is the CPU kernels' float32 copies of small
/// layers (those of at most CpuKernels.FloatCopyLimit weights, run by libtorch at 16 rows and more).</summary>
internal sealed record DemoRow(string Name, double Perplexity, long Bytes, double ReloadedPerplexity,
    double DecodeTokensPerSecond, string Continuation, long FloatCopyBytes = 0);

/// <summary>
/// The whole demo: corpus -> BPE tokenizer (written as a SentencePiece tokenizer.model) -> train a small Llama ->
/// save it as a Hugging Face checkpoint -> for every configuration load it through Llama.FromHuggingFace, quantize,
/// measure held-out perplexity, save with SavePretrained, reload with FromPretrained, sample a continuation.
/// </summary>
internal static class TinyLlamaDemo
{
    internal const string Prompt = "This program is free software";

    internal static IReadOnlyList<DemoRow> Run(DemoOptions options, TextWriter log)
    {
        Corpus corpus = Corpus.Load();
        log.WriteLine($"Corpus: {corpus.Sources}; {corpus.Train.Count} paragraphs for training, " +
                      $"{corpus.HeldOut.Count} held out.");
        string checkpoint = Path.Combine(options.Folder, "float");
        Directory.CreateDirectory(checkpoint);
        List<(string Piece, float Score)> pieces = BpeTrainer.Train(corpus.Train, options.Vocab);
        File.WriteAllBytes(Path.Combine(checkpoint, HfTokenizers.SentencePieceFile), SentencePieceModel.Build(pieces));
        Tokenizer tokenizer = HfTokenizers.Llama(checkpoint);
        long[] train = Tokens(tokenizer, corpus.Train), heldOut = Tokens(tokenizer, corpus.HeldOut);
        heldOut = heldOut[..Math.Min(heldOut.Length, options.EvalTokens)];
        log.WriteLine($"Tokenizer: SentencePiece BPE, {pieces.Count + 3} pieces; {train.Length:N0} training tokens, " +
                      $"{heldOut.Length:N0} held-out tokens.");

        LlamaConfig config = Config(options, pieces.Count + 3);
        manual_seed(options.Seed);
        using (var model = new Llama(config))
        {
            long parameters = model.parameters().Sum(p => p.NumberOfElements);
            log.WriteLine($"Training a {parameters:N0}-parameter Llama ({config.NumHiddenLayers} layers, hidden " +
                          $"{config.HiddenSize}, {config.NumAttentionHeads} heads / {config.NumKeyValueHeads} " +
                          "KV heads) " +
                          $"for {options.Steps} steps of {options.Batch} x {options.Window} tokens:");
            Training.Train(model, train, options.Steps, options.Batch, options.Window, options.Seed);
            SaveFloatCheckpoint(model, checkpoint);
        }

        var rows = new List<DemoRow>();
        foreach (DemoConfiguration configuration in Configurations())
        {
            log.Write($"  {configuration.Name} ...");
            rows.Add(Evaluate(configuration, checkpoint, tokenizer, train, heldOut, options, log));
            log.WriteLine(" done");
        }
        return rows;
    }

    internal static IEnumerable<DemoConfiguration> Configurations() =>
    [
        new("fp32", ScalarType.Float32),
        new("bf16", ScalarType.BFloat16),
        new("w8 (qint8)", ScalarType.Float32, QType.QInt8),
        new("w4 (qint4)", ScalarType.Float32, QType.QInt4),
        new("w2 (qint2)", ScalarType.Float32, QType.QInt2),
        new("w-fp8 (e4m3fn)", ScalarType.Float32, QType.QFloat8E4M3Fn),
        new("w8a8 (calibrated)", ScalarType.Float32, QType.QInt8, QType.QInt8),
        new("w8 dyn-a8", ScalarType.Float32, QType.QInt8, Dynamic: DynamicActivations.Int8),
        new("w4 dyn-a8", ScalarType.Float32, QType.QInt4, Dynamic: DynamicActivations.Int8),
        new("w4 + tuned scales", ScalarType.Float32, QType.QInt4, TunedScales: true),
        new("w2 + tuned scales", ScalarType.Float32, QType.QInt2, TunedScales: true),
    ];

    private static DemoRow Evaluate(DemoConfiguration configuration, string checkpoint, Tokenizer tokenizer,
        long[] train, long[] heldOut, DemoOptions options, TextWriter log)
    {
        using Llama model = Llama.FromHuggingFace(checkpoint, new LoadOptions { DType = configuration.DType });
        double reloaded;
        if (configuration.Weights is QType w)
        {
            Tensor[] windows = configuration.TunedScales ? TuningWindows(train, options.Window) : [];
            List<Tensor> targets = FloatLogits(model, windows);
            try
            {
                model.Quantize(w, configuration.Activations);
                if (configuration.Activations is not null) Calibrate(model, train, options.Window);
                if (configuration.TunedScales) log.Write(TuneScales(model, windows, targets));
            }
            finally
            {
                foreach (Tensor t in windows.Concat(targets)) t.Dispose();
            }
            SetDynamicActivations(model, configuration.Dynamic);
            string saved = Path.Combine(options.Folder, FolderName(configuration.Name));
            model.SavePretrained(saved);
            using Llama again = Llama.FromPretrained(saved);
            // The mode is a run-time setting, not saved: set it again on the reloaded model.
            SetDynamicActivations(again, configuration.Dynamic);
            reloaded = Evaluation.Perplexity(again, heldOut, options.Window);
        }
        else
        {
            reloaded = double.NaN;
        }
        double perplexity = Evaluation.Perplexity(model, heldOut, options.Window);
        long bytes = Quantizer.ModelBytes(model);
        long[] prompt = tokenizer.EncodeToIds(Prompt).Select(i => (long)i).ToArray();
        var generation = new GenerationOptions { MaxNewTokens = 40, Temperature = 0.8, TopK = 40, Seed = 1 };
        GenerationResult result = model.Generate(prompt, generation);
        string continuation = tokenizer.Decode(result.Tokens.Select(t => (int)t));
        double tokensPerSecond = result.Tokens.Count > 1 ? (result.Tokens.Count - 1) / result.DecodeSeconds : 0;
        long floatCopies = Quantizer.QuantizedModules(model).Sum(m => m.QuantizedWeight?.PreparedFloatCopyBytes ?? 0);
        return new DemoRow(configuration.Name, perplexity, bytes, reloaded, tokensPerSecond, continuation, floatCopies);
    }

    private static void SetDynamicActivations(Llama model, DynamicActivations mode)
    {
        foreach (QModule module in Quantizer.QuantizedModules(model)) module.DynamicActivations = mode;
    }

    /// <summary>"w4 + tuned scales" -> "w4-tuned-scales": letters and digits, runs of anything else one dash.
    /// </summary>
    private static string FolderName(string name) =>
        System.Text.RegularExpressions.Regex.Replace(name.ToLowerInvariant(), "[^a-z0-9]+", "-").Trim('-');

    /// <summary>Training windows the tuned-scales rows fit the float model's next-token distributions on.</summary>
    private const int TuningWindowCount = 64;

    /// <summary>Training window i (the first <paramref name="window"/> tokens after i windows) as ids (1, window).
    /// </summary>
    private static Tensor Window(long[] train, int window, int i) =>
        tensor(train.AsSpan(i * window, window).ToArray()).unsqueeze(0);

    /// <summary>The first <see cref="TuningWindowCount"/> training windows (fewer if the training text is shorter;
    /// the caller disposes them).</summary>
    private static Tensor[] TuningWindows(long[] train, int window) =>
        [.. Enumerable.Range(0, Math.Min(TuningWindowCount, train.Length / window)).Select(i =>
            Window(train, window, i))];

    /// <summary>The float model's logits on each window (the caller disposes them).</summary>
    private static List<Tensor> FloatLogits(Llama model, Tensor[] windows)
    {
        using var noGrad = no_grad();
        var targets = new List<Tensor>();
        foreach (Tensor ids in windows)
        {
            using var scope = NewDisposeScope();
            targets.Add(model.forward(ids, null).DetachFromDisposeScope());
        }
        return targets;
    }

    /// <summary><see cref="Llama.TuneScales"/> on the windows and the float model's logits on them; returns a note
    /// for the progress line.</summary>
    private static string TuneScales(Llama model, Tensor[] windows, List<Tensor> targets)
    {
        ScaleTuningReport report = model.TuneScales(windows, targets);
        return $" {report.Summary} (loss: KL on {windows.Length} training windows) ...";
    }

    private static void Calibrate(Llama model, long[] train, int window)
    {
        using var noGrad = no_grad();
        using var calibration = new Calibration(momentum: 0.9);
        for (int i = 0; i < 8; i++)
        {
            using var scope = NewDisposeScope();
            model.forward(Window(train, window, i), null);
        }
    }

    private static LlamaConfig Config(DemoOptions options, int vocab) => new()
    {
        VocabSize = vocab,
        HiddenSize = options.Hidden,
        IntermediateSize = options.Hidden * 8 / 3 / 64 * 64 + 64,
        NumHiddenLayers = options.Layers,
        NumAttentionHeads = Math.Max(2, options.Hidden / 32),
        NumKeyValueHeads = 2,
        HeadDim = options.Hidden / Math.Max(2, options.Hidden / 32),
        MaxPositionEmbeddings = 256,
        RmsNormEps = 1e-5,
        RopeTheta = 10000,
        BosTokenId = 1,
        EosTokenIds = [2],
    };

    private static long[] Tokens(Tokenizer tokenizer, IEnumerable<string> paragraphs) =>
        paragraphs.SelectMany(p => tokenizer.EncodeToIds(p)).Select(i => (long)i).ToArray();

    /// <summary>Writes the trained model as transformers would: config.json + model.safetensors.</summary>
    private static void SaveFloatCheckpoint(Llama model, string folder)
    {
        var config = model.Config.ToJson();
        config["torch_dtype"] = "float32";
        File.WriteAllText(Path.Combine(folder, ConfigJson.FileName), config.ToJsonString());
        var tensors = model.state_dict().Select(p => KeyValuePair.Create(p.Key, p.Value.detach())).ToList();
        Safetensors.Save(Path.Combine(folder, HfCheckpoint.WeightsFileName), tensors);
    }

    /// <summary>Prints the table.</summary>
    internal static void Print(IReadOnlyList<DemoRow> rows, TextWriter output, TimeSpan elapsed)
    {
        DemoRow reference = rows[0];
        output.WriteLine();
        output.WriteLine(
            "| configuration | held-out perplexity | vs fp32 | bytes | ratio | of which float copies | reloaded | " +
            "decode tokens/s |");
        output.WriteLine("|---|--:|--:|--:|--:|--:|---|--:|");
        foreach (DemoRow row in rows)
        {
            string reload = double.IsNaN(row.ReloadedPerplexity) ? "-"
                : row.ReloadedPerplexity == row.Perplexity ? "identical" : $"{row.ReloadedPerplexity:F3}";
            output.WriteLine($"| {row.Name} | {row.Perplexity:F3} | " +
                             $"{row.Perplexity - reference.Perplexity:+0.000;-0.000} | " +
                             $"{row.Bytes:N0} | {(double)reference.Bytes / row.Bytes:F2}x | {row.FloatCopyBytes:N0} | " +
                             $"{reload} | " +
                             $"{row.DecodeTokensPerSecond:F1} |");
        }
        output.WriteLine();
        output.WriteLine($"Continuations of \"{Prompt}\" (temperature 0.8, top-k 40, seed 1, 40 tokens):");
        foreach (DemoRow row in rows) output.WriteLine($"  {row.Name}: {Prompt}{row.Continuation}");
        output.WriteLine($"Total {elapsed:mm\\:ss}.");
    }
}
