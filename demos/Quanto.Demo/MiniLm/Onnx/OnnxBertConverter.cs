using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto.Demo.MiniLm.Onnx;

/// <summary>
/// Turns a BERT encoder exported to ONNX by PyTorch (as the SentenceTransformers packages ship it) into a Hugging Face
/// checkpoint folder (config.json, model.safetensors with BertModel's state-dict names, vocab.txt), so it loads
/// through the same loader as any downloaded checkpoint.
/// </summary>
/// <remarks>
/// The export folds each Linear into MatMul(x, W) + Add(bias): W is stored (in, out), transposed from PyTorch's
/// (out, in), under a numeric name ("927"); only the bias keeps the layer's name. Each weight is found through the
/// graph (the MatMul whose output the named bias is added to) and transposed back. The rest of BertConfig (heads,
/// LayerNorm epsilon, activation) is read from the graph too, not assumed.
/// </remarks>
internal static partial class OnnxBertConverter
{
    /// <summary>The checkpoint's state dict, in the order BertModel declares it.</summary>
    /// <exception cref="InvalidDataException">The graph is not a BERT export of the expected shape; the message
    /// names what is missing.</exception>
    public static List<KeyValuePair<string, Tensor>> StateDict(OnnxModel model)
    {
        var tensors = new List<KeyValuePair<string, Tensor>>();
        var linearWeights = LinearWeights(model);
        foreach ((string name, OnnxTensor tensor) in model.Initializers)
        {
            // Numeric names are the export's own constants (transposed weights, shape pieces); int64 tensors
            // (embeddings.position_ids) are buffers that current transformers checkpoints do not store.
            if (!ParameterName().IsMatch(name) || tensor.DataType != OnnxTensor.Float) continue;
            if (linearWeights.ContainsKey(name)) continue; // added with its bias, in PyTorch's layout
            if (name.EndsWith(".bias", StringComparison.Ordinal) &&
                linearWeights.TryGetValue(name[..^".bias".Length] + ".weight", out Tensor? weight))
            {
                tensors.Add(new(name[..^".bias".Length] + ".weight", weight));
            }
            tensors.Add(new(name, ToTensor(tensor)));
        }
        foreach (string missing in linearWeights.Keys.Except(tensors.Select(t => t.Key)))
            throw new InvalidDataException($"the weight {missing} was found but its bias is not an initializer");
        return tensors;
    }

    /// <summary>The BertConfig fields read from the graph and its initializers' shapes.</summary>
    public static Dictionary<string, object> Config(OnnxModel model)
    {
        long[] words = Shape(model, "embeddings.word_embeddings.weight");
        long hidden = words[1];
        int layers = model.Initializers.Keys.Select(k => LayerIndex().Match(k)).Where(m => m.Success)
            .Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture))
            .DefaultIfEmpty(-1).Max() + 1;
        if (layers == 0) throw new InvalidDataException("no encoder.layer.N initializers: not a BERT export");
        (long heads, long headSize) = AttentionHeads(model);
        if (heads * headSize != hidden)
        {
            throw new InvalidDataException($"the attention reshape splits {hidden} features into {heads} heads of " +
                                           $"{headSize}");
        }
        return new Dictionary<string, object>
        {
            ["architectures"] = new[] { "BertModel" },
            ["model_type"] = "bert",
            ["vocab_size"] = words[0],
            ["hidden_size"] = hidden,
            ["num_hidden_layers"] = layers,
            ["num_attention_heads"] = heads,
            ["intermediate_size"] = Shape(model, "encoder.layer.0.intermediate.dense.bias")[0],
            ["hidden_act"] = model.Nodes.Any(n => n.OpType == "Erf") ? "gelu" : throw new InvalidDataException(
                "the graph has no Erf node: its activation is not BERT's exact GELU"),
            ["max_position_embeddings"] = Shape(model, "embeddings.position_embeddings.weight")[0],
            ["type_vocab_size"] = Shape(model, "embeddings.token_type_embeddings.weight")[0],
            ["layer_norm_eps"] = LayerNormEpsilon(model, "embeddings.LayerNorm.weight"),
            ["hidden_dropout_prob"] = 0.1,
            ["attention_probs_dropout_prob"] = 0.1,
            ["initializer_range"] = 0.02,
            ["pad_token_id"] = 0,
            ["position_embedding_type"] = "absolute",
            ["torch_dtype"] = "float32",
        };
    }

    /// <summary>Writes the checkpoint folder atomically: it is built beside <paramref name="directory"/> and moved
    /// into place only when complete, so an interrupted conversion leaves nothing half-written.</summary>
    public static void Write(OnnxModel model, Stream vocab, string directory)
    {
        string full = Path.GetFullPath(directory);
        string staging = full + ".partial-" + Guid.NewGuid().ToString("N");
        Directory.CreateDirectory(staging);
        try
        {
            string config = JsonSerializer.Serialize(Config(model), new JsonSerializerOptions { WriteIndented = true });
            File.WriteAllText(Path.Combine(staging, "config.json"), config + "\n");
            using (NewDisposeScope())
                Safetensors.Save(Path.Combine(staging, "model.safetensors"), StateDict(model));
            using (FileStream file = File.Create(Path.Combine(staging, "vocab.txt"))) vocab.CopyTo(file);
            if (Directory.Exists(full)) Directory.Delete(full, recursive: true);
            Directory.Move(staging, full);
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
    }

    /// <summary>PyTorch-layout (out, in) weights by state-dict name: every MatMul by a constant matrix whose result
    /// a named bias is added to, and every Gemm (the pooler) with its transB honoured.</summary>
    private static Dictionary<string, Tensor> LinearWeights(OnnxModel model)
    {
        var weights = new Dictionary<string, Tensor>();
        foreach (OnnxNode node in model.Nodes)
        {
            if (node.OpType == "MatMul" && model.Initializers.TryGetValue(node.Inputs[1], out OnnxTensor? matrix))
            {
                string? bias = model.Consumers(node.Outputs[0]).Where(n => n.OpType == "Add")
                    .SelectMany(n => n.Inputs).FirstOrDefault(i => i.EndsWith(".bias", StringComparison.Ordinal));
                if (bias is null)
                {
                    throw new InvalidDataException($"MatMul {node.Name} multiplies by the constant {matrix.Name} but " +
                                                   "no named bias is added to its result: cannot name the weight");
                }
                Add(weights, bias[..^".bias".Length] + ".weight", matrix, transpose: true);
            }
            else if (node.OpType == "Gemm" && model.Initializers.TryGetValue(node.Inputs[1], out OnnxTensor? gemm))
            {
                // Gemm computes A * op(B) + C; PyTorch exports Linear with transB = 1 and B already (out, in).
                Add(weights, gemm.Name, gemm, transpose: node.Int("transB", 0) == 0);
            }
        }
        return weights;
    }

    private static void Add(Dictionary<string, Tensor> weights, string name, OnnxTensor matrix, bool transpose)
    {
        if (matrix.Dims.Length != 2)
            throw new InvalidDataException($"{name} ({matrix.Name}) has shape [{string.Join(", ", matrix.Dims)}]");
        if (!weights.TryAdd(name, transpose ? ToTensor(matrix).t().contiguous() : ToTensor(matrix)))
            throw new InvalidDataException($"two MatMul weights are named {name}");
    }

    /// <summary>(heads, head size): the two constant pieces of the shape that layer 0's key is reshaped to
    /// ([batch, sequence, heads, head size]).</summary>
    private static (long Heads, long HeadSize) AttentionHeads(OnnxModel model)
    {
        const string bias = "encoder.layer.0.attention.self.key.bias";
        OnnxNode key = model.Consumers(bias).FirstOrDefault(n => n.OpType == "Add")
            ?? throw new InvalidDataException($"no Add of {bias}");
        OnnxNode reshape = model.Consumers(key.Outputs[0]).FirstOrDefault(n => n.OpType == "Reshape")
            ?? throw new InvalidDataException("layer 0's key is not reshaped into heads");
        OnnxNode? concat = model.Producer(reshape.Inputs[1]);
        long[] constants = concat is null
            ? []
            : concat.Inputs.Select(model.ConstantValue).OfType<OnnxTensor>().SelectMany(t => t.Int64s()).ToArray();
        if (constants.Length != 2)
            throw new InvalidDataException("the key's reshape target is not [batch, sequence, heads, head size]");
        return (constants[0], constants[1]);
    }

    /// <summary>The epsilon of the LayerNorm whose scale is <paramref name="weight"/>: the export spells it out as
    /// (x - mean) / Sqrt(var + eps) * weight + bias.</summary>
    private static double LayerNormEpsilon(OnnxModel model, string weight)
    {
        OnnxNode? mul = model.Consumers(weight).FirstOrDefault(n => n.OpType == "Mul");
        OnnxNode? div = mul is null ? null : model.Producer(mul.Inputs[0]);
        OnnxNode? sqrt = div?.OpType == "Div" ? model.Producer(div.Inputs[1]) : null;
        OnnxNode? add = sqrt?.OpType == "Sqrt" ? model.Producer(sqrt.Inputs[0]) : null;
        OnnxTensor? eps = add?.OpType == "Add" ? add.Inputs.Select(model.ConstantValue).OfType<OnnxTensor>()
            .FirstOrDefault() : null;
        if (eps is null || eps.Dims.Aggregate(1L, (a, b) => a * b) != 1)
            throw new InvalidDataException($"the LayerNorm of {weight} is not spelled (x - mean) / Sqrt(var + eps)");
        // The float32 constant printed as the shortest decimal that round-trips (1E-12, as config.json writes it).
        float value = eps.Floats()[0];
        return double.Parse(value.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }

    private static long[] Shape(OnnxModel model, string name) =>
        model.Initializers.TryGetValue(name, out OnnxTensor? tensor)
            ? tensor.Dims
            : throw new InvalidDataException($"the initializer {name} is missing: not a BERT export");

    private static Tensor ToTensor(OnnxTensor t) => tensor(t.Floats(), t.Dims);

    [GeneratedRegex(@"^[A-Za-z_][\w]*(\.[\w]+)+$")]
    private static partial Regex ParameterName();

    [GeneratedRegex(@"^encoder\.layer\.(\d+)\.")]
    private static partial Regex LayerIndex();
}
