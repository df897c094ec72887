using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Quanto.Nn;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// Saves and loads whole quantized models in either checkpoint format (see <see cref="QuantizedCheckpoint"/>):
/// optimum-quanto's <c>model.safetensors</c> + <c>quanto_qmap.json</c>, or a single <c>.qnt</c> package, chosen by
/// the path's extension. Each quantized module's <see cref="QModule.Path"/> is its key prefix (the root module, when
/// it is itself quantized, has prefix ""). To rebuild a quantized model from a fresh float one, use
/// <see cref="Quantizer.Requantize(nn.Module, string)"/>.
/// </summary>
public static partial class QuantizedModel
{
    /// <summary>
    /// Metadata key under which the requested group size of each module quantized with a non-default one is stored
    /// (a JSON object, module path -> group size). optimum-quanto ignores it; <see cref="Quantizer.Requantize(
    /// nn.Module, StateDict, QuantizationMap)"/> uses it to build the modules with the same group size.
    /// </summary>
    public const string GroupSizesMetadataKey = "quanto_group_sizes";

    /// <summary>
    /// Saves a quantized model: every quantized module (frozen: the quantized weight in optimum-quanto's keys; not
    /// frozen: the float <c>weight</c>), its bias, <c>input_scale</c> and <c>output_scale</c>, the quantization map,
    /// and every other tensor of <c>model.state_dict()</c> (norms, embeddings, layers left float). A path ending in
    /// <c>.qnt</c> writes a package; anything else a safetensors file with <c>quanto_qmap.json</c> beside it. Atomic.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="path">Target file.</param>
    /// <param name="modules">The quantized modules (default: <see cref="Quantizer.QuantizedModules"/>).</param>
    /// <exception cref="ArgumentException">Two modules share a path, or (safetensors only) a 2/4-bit weight uses a
    /// group size a reader cannot re-derive from its shape; save it as <c>.qnt</c>.</exception>
    public static void Save(nn.Module model, string path, IEnumerable<QModule>? modules = null) =>
        SaveCore(model, path, modules, null);

    /// <summary>
    /// Like <see cref="Save(nn.Module, string, IEnumerable{QModule})"/>, writing safetensors shards of at most
    /// <paramref name="maxShardBytes"/> (plus <c>model.safetensors.index.json</c>) when the tensors exceed it.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="path">Target <c>.safetensors</c> path (its name is the shards' base name).</param>
    /// <param name="maxShardBytes">The shard size limit.</param>
    /// <param name="modules">The quantized modules (default: all of them).</param>
    public static void Save(nn.Module model, string path, long maxShardBytes, IEnumerable<QModule>? modules = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        if (path.EndsWith(QntPackage.Extension, StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException("A .qnt package is a single file; shards are for safetensors.", nameof(path));
        SaveCore(model, path, modules, maxShardBytes);
    }

    /// <summary>
    /// Loads a checkpoint into a model already quantized the same way (same modules, same qtypes): quantized
    /// weights (the modules become frozen), float weights of modules saved before freezing (quantized on the spot if
    /// the module here is frozen), biases, activation scales and every other tensor of the model. Everything is read
    /// and checked before the model is touched, so a failed load leaves it as it was.
    /// </summary>
    /// <param name="model">The quantized model.</param>
    /// <param name="path">A <c>.qnt</c> package, a <c>.safetensors</c> file, an index or a folder (with
    /// <c>quanto_qmap.json</c>).</param>
    /// <param name="modules">The quantized modules (default: <see cref="Quantizer.QuantizedModules"/>).</param>
    /// <exception cref="QuantoFormatException">The file is malformed or does not fit the model: a missing or extra
    /// key, a shape mismatch (naming the key and both shapes), an unknown qtype, a module the map names that the
    /// model lacks (or quantizes differently).</exception>
    public static void Load(nn.Module model, string path, IEnumerable<QModule>? modules = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(path);
        using QuantizedCheckpoint checkpoint = QuantizedCheckpoint.Load(path);
        Load(model, checkpoint, modules);
    }

    /// <summary>
    /// Loads an open checkpoint into a model already quantized the same way; see
    /// <see cref="Load(nn.Module, string, IEnumerable{QModule})"/>. Generated <c>LoadQuantized</c> opens the file
    /// once, quantizes the model from its map (<see cref="Generated.QuantizePlan.FromCheckpoint"/>), then calls this.
    /// The checkpoint's tensors are taken: load it once.
    /// </summary>
    /// <exception cref="QuantoFormatException">See <see cref="Load(nn.Module, string, IEnumerable{QModule})"/>.
    /// </exception>
    public static void Load(nn.Module model, QuantizedCheckpoint checkpoint, IEnumerable<QModule>? modules = null)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        LoadCore(model, checkpoint.StateDict, checkpoint.QuantizationMap, modules, checkpoint.GroupSizes);
    }

    /// <summary>
    /// Loads a state dict (optimum-quanto keys) and its quantization map into a model already quantized the same
    /// way. See <see cref="Load(nn.Module, string, IEnumerable{QModule})"/>. The state dict keeps its tensors; the
    /// model gets its own handles or copies.
    /// </summary>
    /// <exception cref="QuantoFormatException">See <see cref="Load(nn.Module, string, IEnumerable{QModule})"/>.
    /// </exception>
    public static void Load(nn.Module model, StateDict stateDict, QuantizationMap map,
        IEnumerable<QModule>? modules = null) => LoadCore(model, stateDict, map, modules, null);

    /// <summary>The requested group sizes stored in a checkpoint's metadata (module path -> group size).</summary>
    /// <exception cref="QuantoFormatException">The metadata entry is not a JSON object of positive integers.
    /// </exception>
    public static IReadOnlyDictionary<string, int> StoredGroupSizes(StateDict stateDict)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        var groups = new Dictionary<string, int>(StringComparer.Ordinal);
        if (!stateDict.Metadata.TryGetValue(GroupSizesMetadataKey, out string? json)) return groups;
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new QuantoFormatException(stateDict.Source, $"metadata '{GroupSizesMetadataKey}' is not JSON.", e);
        }
        if (root is not JsonObject modules)
        {
            throw new QuantoFormatException(stateDict.Source,
                $"metadata '{GroupSizesMetadataKey}' must be a JSON object of module paths.");
        }
        foreach ((string module, JsonNode? node) in modules)
        {
            if (node is not JsonValue v || !v.TryGetValue(out int g) || g <= 0 || g % 8 != 0)
            {
                throw new QuantoFormatException(stateDict.Source,
                    $"metadata '{GroupSizesMetadataKey}': module '{module}' needs a positive multiple of 8.");
            }
            groups[module] = g;
        }
        return groups;
    }

    /// <summary>Each module with its key prefix: its <see cref="QModule.Path"/>, or "" for the root.</summary>
    internal static List<(string Path, QModule Module)> PathsOf(nn.Module model, IEnumerable<QModule>? modules)
    {
        var entries = new List<(string, QModule)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (QModule module in modules ?? Quantizer.QuantizedModules(model))
        {
            ArgumentNullException.ThrowIfNull(module, nameof(modules));
            string p = ReferenceEquals(module, model) ? "" : module.Path;
            if (!seen.Add(p))
                throw new ArgumentException($"Two quantized modules share the path '{p}'.", nameof(modules));
            entries.Add((p, module));
        }
        return entries;
    }

    /// <summary>The keys of <c>model.state_dict()</c> that belong to the quantized modules (their weight, bias and
    /// scale buffers), found by the modules' places in the module tree. Generated models keep their quantized twins
    /// outside the tree, beside the user's float layer at the same path: every model key under that path is theirs
    /// (the layer's bias, and its weight, emptied once frozen).</summary>
    private static HashSet<string> OwnedKeys(nn.Module model, List<(string Path, QModule Module)> entries)
    {
        var places = new Dictionary<nn.Module, string>(ReferenceEqualityComparer.Instance) { [model] = "" };
        foreach ((string name, nn.Module module) in model.named_modules()) places.TryAdd(module, name);
        string[] modelKeys = model.state_dict().Keys.ToArray();
        var owned = new HashSet<string>(StringComparer.Ordinal);
        foreach ((string path, QModule module) in entries)
        {
            if (places.TryGetValue(module, out string? place))
            {
                foreach (string key in module.state_dict().Keys) owned.Add(QuantoKeys.Join(place, key));
                continue;
            }
            string prefix = path + ".";
            owned.UnionWith(modelKeys.Where(key => key.StartsWith(prefix, StringComparison.Ordinal)));
        }
        return owned;
    }

    private static string Names(IEnumerable<string> paths)
    {
        string[] list = paths.Select(p => $"'{p}'").ToArray();
        return list.Length == 0 ? "none" : string.Join(", ", list);
    }

    /// <summary>"weights qint4, activations none".</summary>
    internal static string Format(QuantizationSpec spec) =>
        $"weights {spec.Weights?.QuantoName() ?? "none"}, activations {spec.Activations?.QuantoName() ?? "none"}";

    /// <summary>Escapes fnmatch's special characters so a module path matches only itself.</summary>
    internal static string EscapePattern(string path) =>
        string.Concat(path.Select(c => c is '*' or '?' or '[' ? "[" + c.ToString(CultureInfo.InvariantCulture) + "]"
            : c.ToString(CultureInfo.InvariantCulture)));
}
