using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// A whole quantized model on disk, in either format: optimum-quanto's (<c>model.safetensors</c>, or shards with
/// an index, plus <c>quanto_qmap.json</c> in the same folder) or a single <c>.qnt</c> package. Model-level
/// helpers (SaveQuantized, LoadQuantized, Quantizer.Requantize) are thin loops over the modules on top of this.
/// Owns its tensors.
/// </summary>
public sealed class QuantizedCheckpoint : IDisposable
{
    private readonly Dictionary<string, int> _groupSizes;

    private QuantizedCheckpoint(string path, StateDict stateDict, QuantizationMap map, Dictionary<string, int> groups)
    {
        Path = path;
        StateDict = stateDict;
        QuantizationMap = map;
        _groupSizes = groups;
    }

    /// <summary>The file (or index, or folder) it was loaded from.</summary>
    public string Path { get; }

    /// <summary>All tensors, in optimum-quanto's keys.</summary>
    public StateDict StateDict { get; }

    /// <summary>Module path -> qtypes.</summary>
    public QuantizationMap QuantizationMap { get; }

    /// <summary>Module path -> the exact group size of its 2/4-bit weight, as a .qnt package stores it (empty for
    /// safetensors, whose readers re-derive it).</summary>
    internal IReadOnlyDictionary<string, int> GroupSizes => _groupSizes;

    /// <summary>
    /// Loads a checkpoint: a <c>.qnt</c> package; a <c>.safetensors</c> file, a <c>.index.json</c> index or a folder,
    /// with <c>quanto_qmap.json</c> beside it.
    /// </summary>
    /// <exception cref="QuantoFormatException">A file is malformed, or the quantization map is missing.</exception>
    public static QuantizedCheckpoint Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (path.EndsWith(QntPackage.Extension, StringComparison.OrdinalIgnoreCase)) return FromPackage(path);
        string folder = Directory.Exists(path)
            ? path
            : System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        string mapPath = System.IO.Path.Combine(folder, QuantizationMap.FileName);
        if (!File.Exists(mapPath))
            throw new QuantoFormatException(path,
                $"no {QuantizationMap.FileName} beside the weights; it names each module's qtypes.");
        QuantizationMap map = QuantizationMap.Load(mapPath);
        return new QuantizedCheckpoint(path, ShardedSafetensors.Load(path), map, []);
    }

    private static QuantizedCheckpoint FromPackage(string path)
    {
        using QntPackage package = QntPackage.Load(path);
        var groups = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (QntTensor t in package.Tensors.Values)
        {
            if (t.GroupSize is int g && t.Name.EndsWith("." + QuantoKeys.Scale, StringComparison.Ordinal))
                groups[t.Name[..^(QuantoKeys.Scale.Length + 1)]] = g;
            else if (t.GroupSize is int g0 && t.Name == QuantoKeys.Scale) groups[""] = g0;
        }
        var map = new QuantizationMap();
        foreach (var (module, spec) in package.QuantizationMap) map.Add(module, spec);
        return new QuantizedCheckpoint(path, package.ToStateDict(path), map, groups);
    }

    /// <summary>
    /// Reads one quantized module's state, using the map's qtypes and, for a .qnt package, the stored group size.
    /// </summary>
    /// <exception cref="QuantoFormatException">The module is not in the map, or its tensors disagree.</exception>
    public QuantizedModuleState ReadModule(string modulePath, ReadOnlySpan<long> weightShape, bool hasBias)
    {
        if (!QuantizationMap.TryGet(modulePath, out QuantizationSpec spec))
            throw new QuantoFormatException(Path, $"module '{modulePath}' is not in the quantization map.");
        int? group = _groupSizes.TryGetValue(modulePath, out int g) ? g : null;
        return QuantizedModuleState.Read(StateDict, modulePath, spec, weightShape, hasBias, group);
    }

    /// <summary>Reports keys no module took (extra keys), instead of silently dropping them.</summary>
    public void ThrowIfUnconsumed() => StateDict.ThrowIfUnconsumed();

    /// <summary>
    /// Saves a checkpoint. For <c>.qnt</c>, one package (group sizes stored). Otherwise a safetensors file (sharded
    /// when <paramref name="maxShardBytes"/> is given and exceeded) and <c>quanto_qmap.json</c> in the same folder;
    /// each file is written atomically, the map last.
    /// </summary>
    /// <param name="path">Target .qnt or .safetensors path.</param>
    /// <param name="modules">Each quantized module's path and state.</param>
    /// <param name="map">The quantization map.</param>
    /// <param name="otherTensors">Float tensors of other modules (norms, embeddings), by full key.</param>
    /// <param name="metadata">Free-form metadata.</param>
    /// <param name="maxShardBytes">Shard size limit for safetensors; null writes one file.</param>
    public static void Save(string path, IEnumerable<KeyValuePair<string, QuantizedModuleState>> modules,
        QuantizationMap map, IEnumerable<KeyValuePair<string, Tensor>>? otherTensors = null,
        IReadOnlyDictionary<string, string>? metadata = null, long? maxShardBytes = null)
    {
        ArgumentNullException.ThrowIfNull(modules);
        ArgumentNullException.ThrowIfNull(map);
        bool qnt = path.EndsWith(QntPackage.Extension, StringComparison.OrdinalIgnoreCase);
        using var package = new QntPackage();
        foreach (var (k, v) in metadata ?? new Dictionary<string, string>()) package.Metadata[k] = v;
        foreach (var (module, spec) in map) package.QuantizationMap.Add(module, spec);
        foreach (var (module, state) in modules)
        {
            var plain = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            if (state.Weight is QuantizedWeight w)
            {
                if (qnt) package.AddWeight(module, w);
                else QuantizedWeightState.Write(w, module, plain); // refuses group sizes a reader cannot re-derive
            }
            state.WriteWithoutWeight(module, plain);
            foreach (var (k, t) in plain) package.Add(k, t);
        }
        foreach (var (k, t) in otherTensors ?? []) package.Add(k, t.alias());
        if (qnt)
        {
            package.Save(path);
            return;
        }
        var tensors = package.Tensors.Select(p => KeyValuePair.Create(p.Key, p.Value.Tensor)).ToList();
        string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        if (maxShardBytes is long max)
        {
            string baseName = System.IO.Path.GetFileNameWithoutExtension(path);
            ShardedSafetensors.Save(folder, tensors, max, package.Metadata, baseName);
        }
        else
        {
            Safetensors.Save(path, tensors, package.Metadata);
        }
        package.QuantizationMap.Save(System.IO.Path.Combine(folder, QuantizationMap.FileName));
    }

    /// <summary>Disposes the tensors.</summary>
    public void Dispose() => StateDict.Dispose();
}
