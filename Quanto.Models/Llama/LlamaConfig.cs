using System.Text.Json.Nodes;
using Quanto.Models.HuggingFace;
using Quanto.Serialization;

namespace Quanto.Models.Llama;

/// <summary>
/// The config.json fields of a Llama-shaped causal LM (transformers' LlamaConfig names). One class serves the
/// model_types whose architecture differs only in fields it reads: "llama" (attention_bias, mlp_bias, rope_scaling),
/// "mistral" (sliding_window) and "qwen2" (biases on q/k/v, none on o_proj).
/// </summary>
public sealed record LlamaConfig
{
    /// <summary>The model_types this class loads.</summary>
    public static IReadOnlyList<string> ModelTypes { get; } = ["llama", "mistral", "qwen2"];

    /// <summary>model_type ("llama", "mistral" or "qwen2").</summary>
    public string ModelType { get; init; } = "llama";

    /// <summary>vocab_size.</summary>
    public long VocabSize { get; init; } = 32000;

    /// <summary>hidden_size.</summary>
    public long HiddenSize { get; init; } = 4096;

    /// <summary>intermediate_size (the SwiGLU width).</summary>
    public long IntermediateSize { get; init; } = 11008;

    /// <summary>num_hidden_layers.</summary>
    public long NumHiddenLayers { get; init; } = 32;

    /// <summary>num_attention_heads.</summary>
    public long NumAttentionHeads { get; init; } = 32;

    /// <summary>num_key_value_heads (grouped-query attention; equal to the heads for multi-head attention).</summary>
    public long NumKeyValueHeads { get; init; } = 32;

    /// <summary>head_dim (default hidden_size / num_attention_heads).</summary>
    public long HeadDim { get; init; } = 128;

    /// <summary>max_position_embeddings.</summary>
    public long MaxPositionEmbeddings { get; init; } = 2048;

    /// <summary>rms_norm_eps.</summary>
    public double RmsNormEps { get; init; } = 1e-6;

    /// <summary>rope_theta.</summary>
    public double RopeTheta { get; init; } = 10000;

    /// <summary>rope_scaling (null: none).</summary>
    public RopeScaling? RopeScaling { get; init; }

    /// <summary>tie_word_embeddings: lm_head shares embed_tokens' weight.</summary>
    public bool TieWordEmbeddings { get; init; }

    /// <summary>Bias on q_proj, k_proj, v_proj (llama's attention_bias; always for qwen2).</summary>
    public bool QkvBias { get; init; }

    /// <summary>Bias on o_proj (llama's attention_bias).</summary>
    public bool OutputBias { get; init; }

    /// <summary>mlp_bias: biases on gate/up/down projections.</summary>
    public bool MlpBias { get; init; }

    /// <summary>sliding_window (mistral): a token attends to at most this many positions; null: all.</summary>
    public long? SlidingWindow { get; init; }

    /// <summary>bos_token_id, or null.</summary>
    public long? BosTokenId { get; init; }

    /// <summary>eos_token_id(s): generation stops at any of them.</summary>
    public IReadOnlyList<long> EosTokenIds { get; init; } = [];

    /// <summary>The config.json this config was read from (unknown fields are written back on save), or null.
    /// </summary>
    public JsonObject? Source { get; init; }

    /// <summary>Reads the fields and checks them.</summary>
    /// <exception cref="QuantoFormatException">Another model_type (the message lists the ones that load), a missing
    /// or malformed field, an activation other than silu, an unsupported rope_scaling type.</exception>
    public static LlamaConfig FromJson(ConfigJson json)
    {
        ArgumentNullException.ThrowIfNull(json);
        string? type = json.ModelType;
        if (type is null || !ModelTypes.Contains(type))
        {
            throw new QuantoFormatException(json.Source,
                $"model_type is '{type ?? "(absent)"}'; Llama loads {string.Join(", ", ModelTypes)} (decoders with " +
                "RMSNorm, rotary positions, grouped-query attention and a SwiGLU MLP).");
        }
        string act = json.OptionalString("hidden_act") ?? "silu";
        if (act != "silu")
            throw new QuantoFormatException(json.Source, $"hidden_act '{act}' is not supported; Llama uses 'silu'.");
        if (type == "qwen2" && json.Bool("use_sliding_window", false))
        {
            throw new QuantoFormatException(json.Source,
                "use_sliding_window true (per-layer windows from max_window_layers) is not supported.");
        }
        long heads = json.PositiveInt("num_attention_heads"), hidden = json.PositiveInt("hidden_size");
        bool attentionBias = json.Bool("attention_bias", false);
        var config = new LlamaConfig
        {
            ModelType = type,
            VocabSize = json.PositiveInt("vocab_size"),
            HiddenSize = hidden,
            IntermediateSize = json.PositiveInt("intermediate_size"),
            NumHiddenLayers = json.PositiveInt("num_hidden_layers"),
            NumAttentionHeads = heads,
            NumKeyValueHeads = json.OptionalInt("num_key_value_heads") ?? heads,
            HeadDim = json.OptionalInt("head_dim") ?? hidden / heads,
            MaxPositionEmbeddings = json.PositiveInt("max_position_embeddings"),
            RmsNormEps = json.Double("rms_norm_eps", 1e-6),
            RopeTheta = json.Double("rope_theta", 10000),
            RopeScaling = RopeScaling.FromJson(json),
            TieWordEmbeddings = json.Bool("tie_word_embeddings", false),
            QkvBias = type == "qwen2" || attentionBias,
            OutputBias = type != "qwen2" && attentionBias,
            MlpBias = json.Bool("mlp_bias", false),
            SlidingWindow = type == "mistral" ? json.OptionalInt("sliding_window") : null,
            BosTokenId = json.OptionalInt("bos_token_id"),
            EosTokenIds = EosIds(json),
            Source = json.Root,
        };
        return json.Checked(config, config.Validate);
    }

    /// <summary>Checks the fields fit together.</summary>
    /// <exception cref="ArgumentException">Heads not divisible by KV heads, an odd head_dim, a size that is not
    /// positive, or an unknown model_type.</exception>
    public void Validate()
    {
        if (!ModelTypes.Contains(ModelType))
            throw new ArgumentException($"model_type '{ModelType}' is not one of {string.Join(", ", ModelTypes)}.");
        if (VocabSize <= 0 || HiddenSize <= 0 || IntermediateSize <= 0 || NumHiddenLayers <= 0 ||
            NumAttentionHeads <= 0 || NumKeyValueHeads <= 0 || MaxPositionEmbeddings <= 0 || HeadDim <= 0)
        {
            throw new ArgumentException("every size in the config must be > 0.");
        }
        if (NumAttentionHeads % NumKeyValueHeads != 0)
        {
            throw new ArgumentException(
                $"num_attention_heads {NumAttentionHeads} is not a multiple of num_key_value_heads " +
                $"{NumKeyValueHeads}.");
        }
        if (HeadDim % 2 != 0) throw new ArgumentException($"head_dim {HeadDim} must be even for rotary embeddings.");
        if (SlidingWindow is long w && w <= 0) throw new ArgumentException($"sliding_window {w} must be > 0.");
    }

    /// <summary>config.json for this config: the source's fields with this config's values over them.</summary>
    public JsonObject ToJson()
    {
        var json = Source is null ? new JsonObject() : (JsonObject)Source.DeepClone();
        json["model_type"] = ModelType;
        json["architectures"] ??= new JsonArray(ModelType switch
        {
            "mistral" => "MistralForCausalLM",
            "qwen2" => "Qwen2ForCausalLM",
            _ => "LlamaForCausalLM",
        });
        json["vocab_size"] = VocabSize;
        json["hidden_size"] = HiddenSize;
        json["intermediate_size"] = IntermediateSize;
        json["num_hidden_layers"] = NumHiddenLayers;
        json["num_attention_heads"] = NumAttentionHeads;
        json["num_key_value_heads"] = NumKeyValueHeads;
        json["head_dim"] = HeadDim;
        json["hidden_act"] = "silu";
        json["max_position_embeddings"] = MaxPositionEmbeddings;
        json["rms_norm_eps"] = RmsNormEps;
        json["rope_theta"] = RopeTheta;
        json["rope_scaling"] = RopeScaling?.ToJson();
        json["tie_word_embeddings"] = TieWordEmbeddings;
        if (ModelType != "qwen2") json["attention_bias"] = QkvBias;
        json["mlp_bias"] = MlpBias;
        if (ModelType == "mistral") json["sliding_window"] = SlidingWindow;
        if (BosTokenId is long bos) json["bos_token_id"] = bos;
        if (EosTokenIds.Count == 1) json["eos_token_id"] = EosTokenIds[0];
        else if (EosTokenIds.Count > 1)
            json["eos_token_id"] = new JsonArray(EosTokenIds.Select(i => (JsonNode)i).ToArray());
        return json;
    }

    private static IReadOnlyList<long> EosIds(ConfigJson json)
    {
        if (json.Root["eos_token_id"] is JsonArray list)
        {
            return list.Select(n => n is JsonValue v && v.TryGetValue(out long id)
                ? id
                : throw new QuantoFormatException(json.Source, "eos_token_id must hold integers.")).ToList();
        }
        return json.OptionalInt("eos_token_id") is long single ? [single] : [];
    }
}
