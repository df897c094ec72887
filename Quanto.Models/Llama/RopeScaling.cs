using System.Text.Json.Nodes;
using Quanto.Models.HuggingFace;
using Quanto.Serialization;

namespace Quanto.Models.Llama;

/// <summary>config.json's rope_scaling: the "linear" and "llama3" types (others are refused when loading).</summary>
/// <param name="Type">"linear" or "llama3".</param>
/// <param name="Factor">factor.</param>
/// <param name="LowFreqFactor">llama3: low_freq_factor.</param>
/// <param name="HighFreqFactor">llama3: high_freq_factor.</param>
/// <param name="OriginalMaxPositionEmbeddings">llama3: original_max_position_embeddings.</param>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor = 1, double HighFreqFactor = 4,
    double OriginalMaxPositionEmbeddings = 8192)
{
    /// <summary>Reads rope_scaling (its "rope_type", or the older "type"); null when absent or "default".</summary>
    /// <exception cref="QuantoFormatException">A type other than linear / llama3, or a missing field.</exception>
    public static RopeScaling? FromJson(ConfigJson json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonObject? node = json.OptionalObject("rope_scaling");
        if (node is null) return null;
        string? type = (node["rope_type"] ?? node["type"]) is JsonValue v && v.TryGetValue(out string? s) ? s : null;
        switch (type)
        {
            case "default":
                return null;
            case "linear":
                return new RopeScaling("linear", json.NestedDouble(node, "rope_scaling", "factor"));
            case "llama3":
                return new RopeScaling("llama3", json.NestedDouble(node, "rope_scaling", "factor"),
                    json.NestedDouble(node, "rope_scaling", "low_freq_factor"),
                    json.NestedDouble(node, "rope_scaling", "high_freq_factor"),
                    json.NestedDouble(node, "rope_scaling", "original_max_position_embeddings"));
            default:
                throw new QuantoFormatException(json.Source,
                    $"rope_scaling type '{type ?? "(absent)"}' is not supported; Llama implements 'linear' and " +
                    "'llama3' (dynamic, yarn and longrope are not).");
        }
    }

    /// <summary>The config.json object.</summary>
    public JsonObject ToJson()
    {
        var json = new JsonObject { ["rope_type"] = Type, ["factor"] = Factor };
        if (Type == "llama3")
        {
            json["low_freq_factor"] = LowFreqFactor;
            json["high_freq_factor"] = HighFreqFactor;
            json["original_max_position_embeddings"] = OriginalMaxPositionEmbeddings;
        }
        return json;
    }
}
