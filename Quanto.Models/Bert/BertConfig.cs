using System.Text.Json.Nodes;
using Quanto.Models.HuggingFace;
using Quanto.Serialization;

namespace Quanto.Models.Bert;

/// <summary>
/// The config.json fields of a transformers BertModel that the encoder reads (names as in transformers'
/// BertConfig; defaults are BERT-base's where transformers has them).
/// </summary>
public sealed record BertConfig
{
    /// <summary>The model_type this config loads.</summary>
    public const string ModelType = "bert";

    /// <summary>vocab_size.</summary>
    public long VocabSize { get; init; } = 30522;

    /// <summary>hidden_size.</summary>
    public long HiddenSize { get; init; } = 768;

    /// <summary>num_hidden_layers.</summary>
    public long NumHiddenLayers { get; init; } = 12;

    /// <summary>num_attention_heads.</summary>
    public long NumAttentionHeads { get; init; } = 12;

    /// <summary>intermediate_size.</summary>
    public long IntermediateSize { get; init; } = 3072;

    /// <summary>hidden_act: "gelu" (erf), "gelu_new" / "gelu_pytorch_tanh" (tanh approximation) or "relu".</summary>
    public string HiddenAct { get; init; } = "gelu";

    /// <summary>max_position_embeddings.</summary>
    public long MaxPositionEmbeddings { get; init; } = 512;

    /// <summary>type_vocab_size.</summary>
    public long TypeVocabSize { get; init; } = 2;

    /// <summary>layer_norm_eps.</summary>
    public double LayerNormEps { get; init; } = 1e-12;

    /// <summary>pad_token_id.</summary>
    public long PadTokenId { get; init; }

    /// <summary>The head size (hidden_size / num_attention_heads).</summary>
    public long HeadDim => HiddenSize / NumAttentionHeads;

    /// <summary>The config.json this config was read from (unknown fields are written back on save), or null.
    /// </summary>
    public JsonObject? Source { get; init; }

    /// <summary>Reads the fields; checks model_type and the shape rules.</summary>
    /// <exception cref="QuantoFormatException">A missing or malformed field, another model_type, an unsupported
    /// activation or position embedding type.</exception>
    public static BertConfig FromJson(ConfigJson json)
    {
        ArgumentNullException.ThrowIfNull(json);
        if (json.ModelType != ModelType)
        {
            throw new QuantoFormatException(json.Source,
                $"model_type is '{json.ModelType ?? "(absent)"}'; Bert loads model_type '{ModelType}' (BertModel " +
                "checkpoints such as bert-base-uncased or all-MiniLM-L6-v2).");
        }
        string position = json.OptionalString("position_embedding_type") ?? "absolute";
        if (position != "absolute")
        {
            throw new QuantoFormatException(json.Source,
                $"position_embedding_type '{position}' is not supported; Bert implements 'absolute'.");
        }
        var config = new BertConfig
        {
            VocabSize = json.PositiveInt("vocab_size"),
            HiddenSize = json.PositiveInt("hidden_size"),
            NumHiddenLayers = json.PositiveInt("num_hidden_layers"),
            NumAttentionHeads = json.PositiveInt("num_attention_heads"),
            IntermediateSize = json.PositiveInt("intermediate_size"),
            HiddenAct = json.OptionalString("hidden_act") ?? "gelu",
            MaxPositionEmbeddings = json.PositiveInt("max_position_embeddings"),
            TypeVocabSize = json.OptionalInt("type_vocab_size") ?? 2,
            LayerNormEps = json.Double("layer_norm_eps", 1e-12),
            PadTokenId = json.OptionalInt("pad_token_id") ?? 0,
            Source = json.Root,
        };
        try
        {
            config.Validate();
        }
        catch (ArgumentException e)
        {
            throw new QuantoFormatException(json.Source, e.Message, e);
        }
        return config;
    }

    /// <summary>Checks the fields fit together.</summary>
    /// <exception cref="ArgumentException">hidden_size not divisible by the heads, or an unknown activation.</exception>
    public void Validate()
    {
        if (HiddenSize % NumAttentionHeads != 0)
        {
            throw new ArgumentException(
                $"hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}.");
        }
        if (HiddenAct is not ("gelu" or "gelu_new" or "gelu_pytorch_tanh" or "relu"))
        {
            throw new ArgumentException(
                $"hidden_act '{HiddenAct}' is not supported; use gelu, gelu_new, gelu_pytorch_tanh or relu.");
        }
        if (VocabSize <= 0 || NumHiddenLayers <= 0 || IntermediateSize <= 0 || MaxPositionEmbeddings <= 0 ||
            TypeVocabSize <= 0)
        {
            throw new ArgumentException("vocab, layer, intermediate, position and type-vocab sizes must be > 0.");
        }
    }

    /// <summary>config.json for this config: the source's fields with this config's values over them.</summary>
    public JsonObject ToJson()
    {
        var json = Source is null ? new JsonObject() : (JsonObject)Source.DeepClone();
        json["model_type"] = ModelType;
        json["architectures"] ??= new JsonArray("BertModel");
        json["vocab_size"] = VocabSize;
        json["hidden_size"] = HiddenSize;
        json["num_hidden_layers"] = NumHiddenLayers;
        json["num_attention_heads"] = NumAttentionHeads;
        json["intermediate_size"] = IntermediateSize;
        json["hidden_act"] = HiddenAct;
        json["max_position_embeddings"] = MaxPositionEmbeddings;
        json["type_vocab_size"] = TypeVocabSize;
        json["layer_norm_eps"] = LayerNormEps;
        json["pad_token_id"] = PadTokenId;
        json["position_embedding_type"] = "absolute";
        return json;
    }
}
