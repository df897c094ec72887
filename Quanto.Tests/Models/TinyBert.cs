using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

/// <summary>A tiny BertModel checkpoint (random weights, real config.json fields) and an independent reference
/// forward written from the published equations on the raw tensors, in float64.</summary>
internal static class TinyBert
{
    internal const int Vocab = 50, Hidden = 16, Layers = 2, Heads = 4, Intermediate = 24, Positions = 20, Types = 2;
    internal const double Eps = 1e-12;

    internal static JsonObject Config(string activation = "gelu") => new()
    {
        ["architectures"] = new JsonArray("BertModel"),
        ["model_type"] = "bert",
        ["vocab_size"] = Vocab,
        ["hidden_size"] = Hidden,
        ["num_hidden_layers"] = Layers,
        ["num_attention_heads"] = Heads,
        ["intermediate_size"] = Intermediate,
        ["hidden_act"] = activation,
        ["max_position_embeddings"] = Positions,
        ["type_vocab_size"] = Types,
        ["layer_norm_eps"] = Eps,
        ["pad_token_id"] = 0,
        ["position_embedding_type"] = "absolute",
        ["torch_dtype"] = "float32",
        ["hidden_dropout_prob"] = 0.1,
    };

    /// <summary>BertModel's state dict, plus a pooler (a real checkpoint has one; the encoder ignores it).</summary>
    internal static Dictionary<string, Tensor> Weights(long seed = 1)
    {
        var g = new Generator((ulong)seed);
        var w = new Dictionary<string, Tensor>
        {
            ["embeddings.word_embeddings.weight"] = HfFiles.Random(g, 0.5, Vocab, Hidden),
            ["embeddings.position_embeddings.weight"] = HfFiles.Random(g, 0.5, Positions, Hidden),
            ["embeddings.token_type_embeddings.weight"] = HfFiles.Random(g, 0.5, Types, Hidden),
            ["embeddings.LayerNorm.weight"] = HfFiles.Random(g, 0.1, Hidden).add_(1),
            ["embeddings.LayerNorm.bias"] = HfFiles.Random(g, 0.1, Hidden),
            ["pooler.dense.weight"] = HfFiles.Random(g, 0.2, Hidden, Hidden),
            ["pooler.dense.bias"] = HfFiles.Random(g, 0.1, Hidden),
        };
        for (int i = 0; i < Layers; i++)
        {
            string p = $"encoder.layer.{i}.";
            foreach (string name in new[] { "attention.self.query", "attention.self.key", "attention.self.value",
                         "attention.output.dense" })
            {
                w[p + name + ".weight"] = HfFiles.Random(g, 0.3, Hidden, Hidden);
                w[p + name + ".bias"] = HfFiles.Random(g, 0.1, Hidden);
            }
            w[p + "intermediate.dense.weight"] = HfFiles.Random(g, 0.3, Intermediate, Hidden);
            w[p + "intermediate.dense.bias"] = HfFiles.Random(g, 0.1, Intermediate);
            w[p + "output.dense.weight"] = HfFiles.Random(g, 0.3, Hidden, Intermediate);
            w[p + "output.dense.bias"] = HfFiles.Random(g, 0.1, Hidden);
            foreach (string norm in new[] { "attention.output.LayerNorm", "output.LayerNorm" })
            {
                w[p + norm + ".weight"] = HfFiles.Random(g, 0.1, Hidden).add_(1);
                w[p + norm + ".bias"] = HfFiles.Random(g, 0.1, Hidden);
            }
        }
        return w;
    }

    /// <summary>BertModel's last hidden state from the equations, in float64.</summary>
    internal static Tensor Reference(IReadOnlyDictionary<string, Tensor> weights, Tensor ids, Tensor mask,
        Tensor types)
    {
        Tensor W(string key) => weights[key].to(ScalarType.Float64);
        Tensor Linear(Tensor x, string p) => matmul(x, W(p + ".weight").t()) + W(p + ".bias");
        Tensor Norm(Tensor x, string p)
        {
            Tensor mean = x.mean([-1], keepdim: true);
            Tensor variance = (x - mean).pow(2).mean([-1], keepdim: true);
            return (x - mean) / (variance + Eps).sqrt() * W(p + ".weight") + W(p + ".bias");
        }
        long batch = ids.shape[0], length = ids.shape[1], headDim = Hidden / Heads;
        Tensor positions = arange(length, dtype: ScalarType.Int64);
        Tensor h = Norm(W("embeddings.word_embeddings.weight")[ids] + W("embeddings.token_type_embeddings.weight")[types]
                        + W("embeddings.position_embeddings.weight")[positions], "embeddings.LayerNorm");
        // Masked keys get -inf-like scores: exp underflows to exactly 0 in float64 too.
        Tensor additive = (1 - mask.to(ScalarType.Float64)).mul(-1e30).view(batch, 1, 1, length);
        for (int i = 0; i < Layers; i++)
        {
            string p = $"encoder.layer.{i}.";
            Tensor Split(Tensor x) => x.view(batch, length, Heads, headDim).permute(0, 2, 1, 3);
            Tensor q = Split(Linear(h, p + "attention.self.query"));
            Tensor k = Split(Linear(h, p + "attention.self.key"));
            Tensor v = Split(Linear(h, p + "attention.self.value"));
            Tensor probs = (matmul(q, k.transpose(2, 3)) / Math.Sqrt(headDim) + additive).softmax(-1);
            Tensor context = matmul(probs, v).permute(0, 2, 1, 3).reshape(batch, length, Hidden);
            Tensor attended = Norm(Linear(context, p + "attention.output.dense") + h, p + "attention.output.LayerNorm");
            Tensor inner = Linear(attended, p + "intermediate.dense");
            Tensor gelu = inner * 0.5 * (1 + special.erf(inner / Math.Sqrt(2)));
            h = Norm(Linear(gelu, p + "output.dense") + attended, p + "output.LayerNorm");
        }
        return h;
    }

    /// <summary>Two sentences, the second padded: ids, mask, token types.</summary>
    internal static (Tensor Ids, Tensor Mask, Tensor Types) Batch()
    {
        Tensor ids = tensor(new long[,] { { 2, 7, 11, 13, 3, 5 }, { 2, 17, 19, 3, 0, 0 } });
        Tensor mask = tensor(new long[,] { { 1, 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 0, 0 } });
        Tensor types = tensor(new long[,] { { 0, 0, 0, 1, 1, 1 }, { 0, 0, 0, 0, 0, 0 } });
        return (ids, mask, types);
    }
}
