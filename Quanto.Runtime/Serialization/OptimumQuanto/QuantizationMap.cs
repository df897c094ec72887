using System.Collections;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Quanto.Serialization;

/// <summary>What one module is quantized to; null means "none" (kept float).</summary>
/// <param name="Weights">The weight qtype, or null.</param>
/// <param name="Activations">The activation qtype, or null.</param>
public sealed record QuantizationSpec(QType? Weights, QType? Activations);

/// <summary>
/// optimum-quanto's quantization map (<c>quanto_qmap.json</c>): module path -> {"weights": "qint4",
/// "activations": "none"}, in module order. With the state dict it is all a loader needs: qtype, axis (0) and
/// group size are rebuilt from it and the module shapes.
/// </summary>
public sealed class QuantizationMap : IEnumerable<KeyValuePair<string, QuantizationSpec>>
{
    /// <summary>The file name optimum-quanto uses beside the weights.</summary>
    public const string FileName = "quanto_qmap.json";

    private const string None = "none";

    /// <summary>Module path -> spec, in insertion order.</summary>
    public OrderedDictionary<string, QuantizationSpec> Modules { get; } = new(StringComparer.Ordinal);

    /// <summary>Number of modules.</summary>
    public int Count => Modules.Count;

    /// <summary>The spec of a module.</summary>
    public QuantizationSpec this[string module]
    {
        get => Modules[module];
        set => Modules[module] = value;
    }

    /// <summary>Adds a module's spec.</summary>
    public void Add(string module, QuantizationSpec spec) => Modules.Add(module, spec);

    /// <summary>The spec of a module; false when the module is not quantized.</summary>
    public bool TryGet(string module, out QuantizationSpec spec) => Modules.TryGetValue(module, out spec!);

    /// <summary>The JSON text, indented, as optimum-quanto's json.dump would hold it.</summary>
    public string ToJson()
    {
        var root = new JsonObject();
        foreach (var (module, spec) in Modules)
        {
            root[module] = new JsonObject
            {
                ["weights"] = spec.Weights?.QuantoName() ?? None,
                ["activations"] = spec.Activations?.QuantoName() ?? None,
            };
        }
        return root.ToJsonString(new JsonSerializerOptions(SafetensorsWriter.JsonOptions) { WriteIndented = true });
    }

    /// <summary>Parses the JSON text of a map.</summary>
    /// <param name="json">The text.</param>
    /// <param name="source">File name for error messages.</param>
    /// <exception cref="QuantoFormatException">Not JSON, not the expected shape, or an unknown qtype name.</exception>
    public static QuantizationMap Parse(string json, string source = "<memory>")
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json);
        }
        catch (Exception e) when (e is JsonException or ArgumentException)
        {
            throw new QuantoFormatException(source, $"quantization map is not valid JSON: {e.Message}", e);
        }
        if (root is not JsonObject modules)
            throw new QuantoFormatException(source, "quantization map must be a JSON object of module paths.");
        var map = new QuantizationMap();
        foreach (var (module, node) in modules)
        {
            if (node is not JsonObject spec)
                throw new QuantoFormatException(source,
                    $"module '{module}': expected an object with 'weights' and 'activations'.");
            map.Add(module, new QuantizationSpec(
                ReadQType(spec, "weights", module, source), ReadQType(spec, "activations", module, source)));
        }
        return map;
    }

    /// <summary>Reads a map file.</summary>
    public static QuantizationMap Load(string path) => Parse(File.ReadAllText(path, Encoding.UTF8), path);

    /// <summary>Writes the map atomically.</summary>
    public void Save(string path)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(ToJson() + "\n");
        AtomicFile.Write(path, stream => stream.Write(bytes));
    }

    /// <summary>Parses one qtype field, shared with the .qnt reader.</summary>
    internal static QType? ParseQType(string? name, string field, string module, string source)
    {
        if (name is null)
            throw new QuantoFormatException(source, $"module '{module}': '{field}' is missing or not a string.");
        if (name == None) return null;
        if (QTypes.TryParse(name, out QType qtype)) return qtype;
        string valid = string.Join(", ", QTypes.All.Select(q => q.QuantoName()).Append(None));
        throw new QuantoFormatException(source,
            $"module '{module}': unknown {field} qtype '{name}' (valid: {valid}).");
    }

    private static QType? ReadQType(JsonObject spec, string field, string module, string source)
    {
        string? name = spec[field] is JsonValue v && v.TryGetValue(out string? s) ? s : null;
        return ParseQType(name, field, module, source);
    }

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, QuantizationSpec>> GetEnumerator() => Modules.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
