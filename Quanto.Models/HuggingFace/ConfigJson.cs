using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto.Models.HuggingFace;

/// <summary>
/// A Hugging Face <c>config.json</c>, read field by field with errors that name the file, the field and what was
/// expected (a model needs its shape fields; optional fields take transformers' defaults).
/// </summary>
public sealed class ConfigJson
{
    /// <summary>The file name transformers uses.</summary>
    public const string FileName = "config.json";

    private ConfigJson(JsonObject root, string source)
    {
        Root = root;
        Source = source;
    }

    /// <summary>The parsed JSON object (to copy unknown fields through on save).</summary>
    public JsonObject Root { get; }

    /// <summary>The file (for messages).</summary>
    public string Source { get; }

    /// <summary>The <c>model_type</c> field ("bert", "llama", ...), or null when absent.</summary>
    public string? ModelType => OptionalString("model_type");

    /// <summary>Reads <c>config.json</c> from a checkpoint folder.</summary>
    /// <exception cref="QuantoFormatException">The folder has no config.json, or it is not a JSON object.</exception>
    public static ConfigJson Load(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        string path = Path.Combine(folder, FileName);
        if (!File.Exists(path))
        {
            throw new QuantoFormatException(path,
                "no config.json: a Hugging Face checkpoint folder holds config.json beside model.safetensors.");
        }
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses config.json text.</summary>
    /// <exception cref="QuantoFormatException">Not a JSON object.</exception>
    public static ConfigJson Parse(string json, string source)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new QuantoFormatException(source, $"not valid JSON: {e.Message}", e);
        }
        return node is JsonObject root
            ? new ConfigJson(root, source)
            : throw new QuantoFormatException(source, "config.json must be a JSON object.");
    }

    /// <summary>A required integer field.</summary>
    /// <exception cref="QuantoFormatException">Missing, or not an integer.</exception>
    public long Int(string name) =>
        OptionalInt(name) ?? throw new QuantoFormatException(Source, $"field '{name}' is missing (an integer).");

    /// <summary>A required positive integer field.</summary>
    /// <exception cref="QuantoFormatException">Missing, not an integer, or not positive.</exception>
    public long PositiveInt(string name)
    {
        long value = Int(name);
        return value > 0 ? value : throw new QuantoFormatException(Source, $"field '{name}' is {value}; it must be > 0.");
    }

    /// <summary>An optional integer field (null when absent or JSON null).</summary>
    /// <exception cref="QuantoFormatException">Present but not an integer.</exception>
    public long? OptionalInt(string name) => OptionalInt(Root, name);

    /// <summary>An optional number.</summary>
    /// <exception cref="QuantoFormatException">Present but not a number.</exception>
    public double Double(string name, double fallback) => OptionalDouble(Root, name) ?? fallback;

    /// <summary>An optional boolean.</summary>
    /// <exception cref="QuantoFormatException">Present but not a boolean.</exception>
    public bool Bool(string name, bool fallback)
    {
        JsonNode? node = Root[name];
        if (node is null) return fallback;
        return node is JsonValue v && v.TryGetValue(out bool b)
            ? b
            : throw new QuantoFormatException(Source, $"field '{name}' must be true or false; got {node.ToJsonString()}.");
    }

    /// <summary>An optional string.</summary>
    /// <exception cref="QuantoFormatException">Present but not a string.</exception>
    public string? OptionalString(string name)
    {
        JsonNode? node = Root[name];
        if (node is null) return null;
        return node is JsonValue v && v.TryGetValue(out string? s)
            ? s
            : throw new QuantoFormatException(Source, $"field '{name}' must be a string; got {node.ToJsonString()}.");
    }

    /// <summary>An optional nested object (such as <c>rope_scaling</c>).</summary>
    /// <exception cref="QuantoFormatException">Present but not an object.</exception>
    public JsonObject? OptionalObject(string name)
    {
        JsonNode? node = Root[name];
        if (node is null) return null;
        return node as JsonObject
            ?? throw new QuantoFormatException(Source, $"field '{name}' must be an object; got {node.ToJsonString()}.");
    }

    /// <summary>A number inside a nested object, with the dotted name in errors.</summary>
    /// <exception cref="QuantoFormatException">Missing (when no fallback) or not a number.</exception>
    public double NestedDouble(JsonObject parent, string parentName, string name, double? fallback = null) =>
        OptionalDouble(parent, name, parentName) ?? fallback
        ?? throw new QuantoFormatException(Source, $"field '{parentName}.{name}' is missing (a number).");

    /// <summary>
    /// The <c>torch_dtype</c> field as a TorchSharp dtype ("float32", "float16", "bfloat16"); null when absent.
    /// </summary>
    /// <exception cref="QuantoFormatException">Another value.</exception>
    public ScalarType? TorchDType()
    {
        string? name = OptionalString("torch_dtype");
        return name is null ? null : DTypes.Parse(name, Source);
    }

    private long? OptionalInt(JsonObject obj, string name, string? parent = null)
    {
        JsonNode? node = obj[name];
        if (node is null) return null;
        if (node is JsonValue v && v.TryGetValue(out long l)) return l;
        if (node is JsonValue d && d.TryGetValue(out double x) && x == Math.Floor(x) && Math.Abs(x) < 1e15)
            return (long)x;
        throw new QuantoFormatException(Source,
            $"field '{Dotted(parent, name)}' must be an integer; got {node.ToJsonString()}.");
    }

    private double? OptionalDouble(JsonObject obj, string name, string? parent = null)
    {
        JsonNode? node = obj[name];
        if (node is null) return null;
        return node is JsonValue v && v.TryGetValue(out double d)
            ? d
            : throw new QuantoFormatException(Source,
                $"field '{Dotted(parent, name)}' must be a number; got {node.ToJsonString()}.");
    }

    private static string Dotted(string? parent, string name) => parent is null ? name : $"{parent}.{name}";

    /// <summary>Formats a value for config.json with invariant culture.</summary>
    internal static string Invariant(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
