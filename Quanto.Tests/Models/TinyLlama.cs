using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

/// <summary>Tiny Llama-family checkpoints (random weights, real config.json fields) and an independent float64
/// reference of LlamaForCausalLM written from the published equations (RMSNorm, RoPE pairs (i, i + d/2), keys and
/// values repeated per query group, causal softmax attention, SwiGLU).</summary>
internal static class TinyLlama
{
    internal const int Vocab = 64, Hidden = 32, Intermediate = 48, Layers = 2, Heads = 4, KvHeads = 2, HeadDim = 8;
    internal const int Positions = 64;
    internal const double Eps = 1e-5;

    internal static JsonObject Config(string type = "llama", bool tied = false, JsonObject? ropeScaling = null,
        long? window = null) => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["model_type"] = type,
        ["vocab_size"] = Vocab,
        ["hidden_size"] = Hidden,
        ["intermediate_size"] = Intermediate,
        ["num_hidden_layers"] = Layers,
        ["num_attention_heads"] = Heads,
        ["num_key_value_heads"] = KvHeads,
        ["hidden_act"] = "silu",
        ["max_position_embeddings"] = Positions,
        ["rms_norm_eps"] = Eps,
        ["rope_theta"] = 500.0,
        ["rope_scaling"] = ropeScaling,
        ["tie_word_embeddings"] = tied,
        ["sliding_window"] = window,
        ["bos_token_id"] = 1,
        ["eos_token_id"] = 2,
        ["torch_dtype"] = "float32",
    };

    internal static Dictionary<string, Tensor> Weights(bool tied = false, bool qkvBias = false, long seed = 3)
    {
        var g = new Generator((ulong)seed);
        var w = new Dictionary<string, Tensor>
        {
            ["model.embed_tokens.weight"] = HfFiles.Random(g, 1.0, Vocab, Hidden),
            ["model.norm.weight"] = HfFiles.Random(g, 0.1, Hidden).add_(1),
        };
        if (!tied) w["lm_head.weight"] = HfFiles.Random(g, 0.2, Vocab, Hidden);
        for (int i = 0; i < Layers; i++)
        {
            string p = $"model.layers.{i}.";
            w[p + "self_attn.q_proj.weight"] = HfFiles.Random(g, 0.3, Heads * HeadDim, Hidden);
            w[p + "self_attn.k_proj.weight"] = HfFiles.Random(g, 0.3, KvHeads * HeadDim, Hidden);
            w[p + "self_attn.v_proj.weight"] = HfFiles.Random(g, 0.3, KvHeads * HeadDim, Hidden);
            w[p + "self_attn.o_proj.weight"] = HfFiles.Random(g, 0.3, Hidden, Heads * HeadDim);
            if (qkvBias)
            {
                w[p + "self_attn.q_proj.bias"] = HfFiles.Random(g, 0.1, Heads * HeadDim);
                w[p + "self_attn.k_proj.bias"] = HfFiles.Random(g, 0.1, KvHeads * HeadDim);
                w[p + "self_attn.v_proj.bias"] = HfFiles.Random(g, 0.1, KvHeads * HeadDim);
            }
            w[p + "mlp.gate_proj.weight"] = HfFiles.Random(g, 0.3, Intermediate, Hidden);
            w[p + "mlp.up_proj.weight"] = HfFiles.Random(g, 0.3, Intermediate, Hidden);
            w[p + "mlp.down_proj.weight"] = HfFiles.Random(g, 0.3, Hidden, Intermediate);
            w[p + "input_layernorm.weight"] = HfFiles.Random(g, 0.1, Hidden).add_(1);
            w[p + "post_attention_layernorm.weight"] = HfFiles.Random(g, 0.1, Hidden).add_(1);
        }
        return w;
    }

    /// <summary>Inverse frequencies from the published formulas, in double.</summary>
    internal static double[] InverseFrequencies(JsonObject config)
    {
        double theta = config["rope_theta"]!.GetValue<double>();
        var f = new double[HeadDim / 2];
        for (int i = 0; i < f.Length; i++) f[i] = Math.Pow(theta, -2.0 * i / HeadDim);
        if (config["rope_scaling"] is not JsonObject s) return f;
        double factor = s["factor"]!.GetValue<double>();
        if ((string?)(s["rope_type"] ?? s["type"]) == "linear") return f.Select(x => x / factor).ToArray();
        double low = s["low_freq_factor"]!.GetValue<double>(), high = s["high_freq_factor"]!.GetValue<double>();
        double original = s["original_max_position_embeddings"]!.GetValue<double>();
        return f.Select(x =>
        {
            double wavelength = 2 * Math.PI / x;
            if (wavelength < original / high) return x;
            if (wavelength > original / low) return x / factor;
            double smooth = (original / wavelength - low) / (high - low);
            return (1 - smooth) * x / factor + smooth * x;
        }).ToArray();
    }

    /// <summary>Logits (batch, seq, vocab) of the whole sequence, in float64.</summary>
    internal static Tensor Reference(IReadOnlyDictionary<string, Tensor> weights, JsonObject config, Tensor ids)
    {
        Tensor W(string key) => weights[key].to(ScalarType.Float64);
        Tensor Linear(Tensor x, string p) =>
            weights.ContainsKey(p + ".bias") ? matmul(x, W(p + ".weight").t()) + W(p + ".bias") : matmul(x, W(p + ".weight").t());
        Tensor Norm(Tensor x, string key) => x / (x.pow(2).mean([-1], keepdim: true) + Eps).sqrt() * W(key);
        long batch = ids.shape[0], length = ids.shape[1], groups = Heads / KvHeads;
        long? window = config["sliding_window"]?.GetValue<long>();

        Tensor angles = outer(arange(length, dtype: ScalarType.Float64),
            tensor(InverseFrequencies(config), dtype: ScalarType.Float64));
        Tensor cos = angles.cos(), sin = angles.sin();
        Tensor Rotate(Tensor x) // x (batch, heads, seq, d): pairs (i, i + d/2) rotate by the angle of pair i
        {
            Tensor a = x.narrow(-1, 0, HeadDim / 2), b = x.narrow(-1, HeadDim / 2, HeadDim / 2);
            return cat([a * cos - b * sin, b * cos + a * sin], -1);
        }
        var allowed = new double[length, length];
        for (int i = 0; i < length; i++)
            for (int j = 0; j < length; j++)
                allowed[i, j] = j <= i && (window is null || i - j < window) ? 0 : double.NegativeInfinity;
        Tensor mask = tensor(allowed);

        Tensor h = W("model.embed_tokens.weight")[ids];
        for (int i = 0; i < Layers; i++)
        {
            string p = $"model.layers.{i}.";
            Tensor x = Norm(h, p + "input_layernorm.weight");
            Tensor Split(Tensor t, long heads) => t.view(batch, length, heads, HeadDim).permute(0, 2, 1, 3);
            Tensor q = Rotate(Split(Linear(x, p + "self_attn.q_proj"), Heads));
            Tensor k = Rotate(Split(Linear(x, p + "self_attn.k_proj"), KvHeads)).repeat_interleave(groups, 1);
            Tensor v = Split(Linear(x, p + "self_attn.v_proj"), KvHeads).repeat_interleave(groups, 1);
            Tensor probs = (matmul(q, k.transpose(2, 3)) / Math.Sqrt(HeadDim) + mask).softmax(-1);
            Tensor context = matmul(probs, v).permute(0, 2, 1, 3).reshape(batch, length, Heads * HeadDim);
            h = h + Linear(context, p + "self_attn.o_proj");
            Tensor y = Norm(h, p + "post_attention_layernorm.weight");
            Tensor gate = Linear(y, p + "mlp.gate_proj");
            h = h + Linear(gate * gate.sigmoid() * Linear(y, p + "mlp.up_proj"), p + "mlp.down_proj");
        }
        Tensor head = weights.ContainsKey("lm_head.weight") ? W("lm_head.weight") : W("model.embed_tokens.weight");
        return matmul(Norm(h, "model.norm.weight"), head.t());
    }

    internal static Tensor Prompt(long length = 9, long seed = 5)
    {
        var g = new Generator((ulong)seed);
        return randint(3, Vocab, [1, length], generator: g, dtype: ScalarType.Int64);
    }
}
