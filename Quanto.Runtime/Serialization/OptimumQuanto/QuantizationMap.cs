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

    /// <summary>optimum-quanto writes the map with json.dump(qmap, f, indent=4).</summary>
    private static readonly JsonSerializerOptions IndentedFour =
        new(SafetensorsWriter.JsonOptions) { WriteIndented = true, IndentSize = 4 };

    /// <summary>
    /// The map file that goes with a weights file: <c>quanto_qmap.json</c> for <c>model.safetensors</c> (and
    /// <c>model.safetensors.index.json</c>), the folder layout optimum-quanto's from_pretrained reads;
    /// <c>{base}.quanto_qmap.json</c> for any other <c>{base}.safetensors</c>, so that checkpoints saved into one
    /// folder keep a map each. Readers also accept the folder's <c>quanto_qmap.json</c> for weights of another
    /// name that hold quantized modules (what earlier versions and other tools wrote).
    /// </summary>
    /// <param name="weightsPath">A .safetensors or .safetensors.index.json path.</param>
    /// <exception cref="ArgumentException">Another extension.</exception>
    public static string FileNameFor(string weightsPath) =>
        CheckpointFiles.MapFileFor(CheckpointFiles.BaseNameOf(weightsPath));

    /// <summary>The file the map was read from ("&lt;memory&gt;" when built in code), for messages.</summary>
    public string Source { get; private init; } = "<memory>";

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

    /// <summary>The JSON text as optimum-quanto's json.dump(indent=4) writes it.</summary>
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
        return root.ToJsonString(IndentedFour);
    }

    /// <summary>Parses the JSON text of a map.</summary>
    /// <param name="json">The text.</param>
    /// <param name="source">File name for error messages.</param>
    /// <exception cref="QuantoFormatException">Not JSON, a repeated key, not the expected shape, or an unknown
    /// qtype name.</exception>
    public static QuantizationMap Parse(string json, string source = "<memory>")
    {
        ArgumentNullException.ThrowIfNull(json);
        return Parse(Encoding.UTF8.GetBytes(json), source);
    }

    /// <summary>Parses a map from its UTF-8 bytes.</summary>
    internal static QuantizationMap Parse(ReadOnlyMemory<byte> utf8, string source)
    {
        using JsonDocument document = StrictJson.Parse(utf8, source, "quantization map");
        if (document.RootElement.ValueKind != JsonValueKind.Object)
            throw new QuantoFormatException(source, "quantization map must be a JSON object of module paths.");
        var map = new QuantizationMap { Source = source };
        foreach (JsonProperty module in document.RootElement.EnumerateObject())
        {
            if (module.Value.ValueKind != JsonValueKind.Object)
                throw new QuantoFormatException(source,
                    $"module '{module.Name}': expected an object with 'weights' and 'activations'.");
            map.Add(module.Name, new QuantizationSpec(ReadQType(module.Value, "weights", module.Name, source),
                ReadQType(module.Value, "activations", module.Name, source)));
        }
        return map;
    }

    /// <summary>Reads a map file (first finishing an interrupted save into its folder, if any).</summary>
    /// <exception cref="QuantoFormatException">The file is not a valid map.</exception>
    public static QuantizationMap Load(string path) => FileSet.Read(path, () => LoadFile(path));

    /// <summary>Reads a map file as it is.</summary>
    internal static QuantizationMap LoadFile(string path) => Parse(File.ReadAllBytes(path), path);

    /// <summary>Writes the map atomically.</summary>
    public void Save(string path)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(ToJson()); // json.dump writes no final newline
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

    private static QType? ReadQType(JsonElement spec, string field, string module, string source)
    {
        string? name = spec.TryGetProperty(field, out JsonElement value) ? StrictJson.StringOrNull(value) : null;
        return ParseQType(name, field, module, source);
    }

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, QuantizationSpec>> GetEnumerator() => Modules.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
