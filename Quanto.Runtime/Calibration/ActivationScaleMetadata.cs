using System.Text.Json;
using System.Text.Json.Nodes;
using Quanto.Nn;
using Quanto.Serialization;

namespace Quanto;

/// <summary>
/// What the activation scales of a checkpoint's modules hold, in the metadata of the files we write (optimum-quanto
/// ignores it): <c>quanto_activation_scales</c> = {"path": {"input": "uncalibrated", "output": "streamlined"}},
/// listing only modules that differ from how optimum-quanto reads a file. Without an entry (and in every
/// optimum-quanto file) both scales count as calibrated and the output as quantized, since optimum-quanto runs any
/// file that way: an uncalibrated file's scale 1.0 included. The flags keep their meaning through a save and load.
/// </summary>
internal static class ActivationScaleMetadata
{
    /// <summary>The metadata key.</summary>
    internal const string Key = "quanto_activation_scales";

    private const string Input = "input", Output = "output";
    private const string Uncalibrated = "uncalibrated", Streamlined = "streamlined";

    /// <summary>Adds the entry for the modules whose scales optimum-quanto's reading would misstate.</summary>
    internal static void Write(IEnumerable<(string Path, QModule Module)> modules, IDictionary<string, string> metadata)
    {
        var root = new JsonObject();
        foreach ((string path, QModule module) in modules)
        {
            if (module.ActivationQType is null) continue;
            var entry = new JsonObject();
            if (!module.InputCalibrated) entry[Input] = Uncalibrated;
            if (!module.OutputCalibrated) entry[Output] = Uncalibrated;
            else if (module.OutputStreamlined) entry[Output] = Streamlined;
            if (entry.Count > 0) root[path] = entry;
        }
        if (root.Count > 0) metadata[Key] = root.ToJsonString();
    }

    /// <summary>Reads and checks the entry against the modules being loaded; nothing is changed yet.</summary>
    /// <exception cref="QuantoFormatException">The entry is malformed or names a module that does not quantize
    /// activations.</exception>
    internal static Dictionary<string, (bool Input, bool Output, bool Streamlined)> Read(StateDict stateDict,
        IEnumerable<(string Path, QModule Module)> modules)
    {
        var states = new Dictionary<string, (bool, bool, bool)>(StringComparer.Ordinal);
        if (!stateDict.Metadata.TryGetValue(Key, out string? json)) return states;
        string source = stateDict.Source;
        List<KeyValuePair<string, JsonNode?>> root;
        try
        {
            // Enumerated here: JsonObject finds duplicate keys lazily, on first access.
            root = (JsonNode.Parse(json) as JsonObject
                ?? throw new QuantoFormatException(source, $"metadata '{Key}' must be a JSON object of module paths."))
                .ToList();
            foreach (JsonObject entry in root.Select(p => p.Value).OfType<JsonObject>()) _ = entry.Count;
        }
        catch (Exception e) when (e is JsonException or ArgumentException or InvalidOperationException)
        {
            // System.Text.Json reports duplicate keys with ArgumentException, bad nesting with InvalidOperation.
            throw new QuantoFormatException(source, $"metadata '{Key}' is not a valid JSON object: {e.Message}", e);
        }
        var activated = modules.Where(m => m.Module.ActivationQType is not null).Select(m => m.Path)
            .ToHashSet(StringComparer.Ordinal);
        foreach ((string path, JsonNode? node) in root)
        {
            if (!activated.Contains(path))
            {
                throw new QuantoFormatException(source,
                    $"metadata '{Key}' describes module '{path}', which does not quantize activations here.");
            }
            if (node is not JsonObject entry || entry.Any(p => p.Key is not (Input or Output)))
            {
                throw new QuantoFormatException(source,
                    $"metadata '{Key}': module '{path}' needs an object with \"{Input}\" and/or \"{Output}\".");
            }
            string? input = Text(entry, Input, source, path, Uncalibrated);
            string? output = Text(entry, Output, source, path, Uncalibrated, Streamlined);
            states[path] = (input is null, output is null or Streamlined, output == Streamlined);
        }
        return states;
    }

    /// <summary>Sets the flags of every activation-quantizing module after its scales were loaded.</summary>
    internal static void Apply(IEnumerable<(string Path, QModule Module)> modules,
        Dictionary<string, (bool Input, bool Output, bool Streamlined)> states)
    {
        foreach ((string path, QModule module) in modules)
        {
            if (module.ActivationQType is null) continue;
            (bool input, bool output, bool streamlined) = states.GetValueOrDefault(path, (true, true, false));
            module.SetLoadedScaleState(input, output, streamlined);
        }
    }

    private static string? Text(JsonObject entry, string name, string source, string path, params string[] allowed)
    {
        if (!entry.TryGetPropertyValue(name, out JsonNode? node)) return null;
        if (node is JsonValue v && v.TryGetValue(out string? text) && allowed.Contains(text)) return text;
        string choices = string.Join(" or ", allowed.Select(a => $"\"{a}\""));
        throw new QuantoFormatException(source, $"metadata '{Key}': module '{path}' {name} must be {choices}.");
    }
}
