using System.Text.Json.Nodes;
using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// A whole quantized model on disk, in either format: optimum-quanto's (weights <c>{base}.safetensors</c>, or
/// shards with an index, plus the quantization map beside them: <c>quanto_qmap.json</c> for base "model", else
/// <c>{base}.quanto_qmap.json</c>; see <see cref="QuantizationMap.FileNameFor"/>) or a single <c>.qnt</c> package.
/// Saves are crash-safe as a set, and loads refuse a set mixed from two saves where the files' records can tell
/// (see Quanto.Runtime/Serialization/README.md). Model-level helpers (SaveQuantized, LoadQuantized,
/// Quantizer.Requantize) are thin loops over the modules on top of this. Owns its tensors.
/// </summary>
public sealed class QuantizedCheckpoint : IDisposable
{
    private readonly Dictionary<string, int> _groupSizes;

    private QuantizedCheckpoint(string path, StateDict stateDict, QuantizationMap map, Dictionary<string, int> groups,
        string? mapPath, string mapOrigin)
    {
        Path = path;
        StateDict = stateDict;
        QuantizationMap = map;
        _groupSizes = groups;
        MapPath = mapPath;
        MapOrigin = mapOrigin;
    }

    /// <summary>The file (or index, or folder) it was loaded from.</summary>
    public string Path { get; }

    /// <summary>All tensors, in optimum-quanto's keys (each read from the file when first taken).</summary>
    public StateDict StateDict { get; }

    /// <summary>Module path -> qtypes.</summary>
    public QuantizationMap QuantizationMap { get; }

    /// <summary>The map file used; null for a .qnt package (its map is inside).</summary>
    public string? MapPath { get; }

    /// <summary>How the map was found: "recorded by the weights", "named after the weights", "the folder's
    /// quanto_qmap.json", or "in the package".</summary>
    public string MapOrigin { get; }

    /// <summary>Module path -> the exact group size of its 2/4-bit weight, as a .qnt package stores it (empty for
    /// safetensors, whose readers re-derive it).</summary>
    internal IReadOnlyDictionary<string, int> GroupSizes => _groupSizes;

    /// <summary>
    /// Loads a checkpoint: a <c>.qnt</c> package; a <c>.safetensors</c> file, a <c>.safetensors.index.json</c> index
    /// or a folder, with its quantization map beside it. Only the headers are read now; tensors are read when taken.
    /// The checkpoint keeps the files open until it is disposed.
    /// </summary>
    /// <exception cref="ArgumentException">An extension that is none of those (mlp.bin).</exception>
    /// <exception cref="QuantoFormatException">A file is malformed, the quantization map is missing or belongs to
    /// another save, or the files are a mix of two saves.</exception>
    public static QuantizedCheckpoint Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (path.EndsWith(QntPackage.Extension, StringComparison.OrdinalIgnoreCase)) return FromPackage(path);
        CheckpointFiles.WeightsFileOf(path); // refuses unknown extensions before anything is opened
        return FileSet.ReadSet(path, () => Opened.Open(path, CheckpointFiles.WeightsFileOf(path)), o => o.Mixed).Take();
    }

    /// <summary>A safetensors checkpoint opened for <see cref="FileSet.ReadSet"/>: its files and map, and whether they
    /// are one save's.</summary>
    private sealed class Opened : IDisposable
    {
        private SafetensorsSet? _set;
        private QuantizedCheckpoint? _checkpoint;

        internal string? Mixed { get; private set; }

        internal static Opened Open(string path, string weights)
        {
            var opened = new Opened { _set = SafetensorsSet.Open(weights) };
            try
            {
                SafetensorsSet set = opened._set;
                opened.Mixed = set.Mixed;
                string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(set.WeightsPath))!;
                var (mapPath, how) = CheckpointFiles.ResolveMap(folder, CheckpointFiles.BaseNameOf(set.WeightsPath),
                    set.Record, CheckpointFiles.HoldsQuantizedKeys(set.StateDict.Keys));
                if (mapPath is null)
                    throw new QuantoFormatException(path, $"{how}; the map names each module's qtypes.");
                QuantizationMap map = CheckpointFiles.LoadMap(mapPath, set.Record, set.WeightsPath, out string? stale);
                opened.Mixed ??= stale;
                opened._checkpoint = new QuantizedCheckpoint(path, set.TakeStateDict(), map, [], mapPath, how);
                return opened;
            }
            catch
            {
                opened.Dispose();
                throw;
            }
        }

        internal QuantizedCheckpoint Take()
        {
            QuantizedCheckpoint checkpoint = _checkpoint!;
            _checkpoint = null;
            return checkpoint;
        }

        public void Dispose()
        {
            _set?.Dispose();
            _checkpoint?.Dispose();
        }
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
        return new QuantizedCheckpoint(path, package.ToStateDict(path), map, groups, null, "in the package");
    }

    /// <summary>
    /// Reads one quantized module's state, using the map's qtypes and the group size a .qnt package stores or our
    /// metadata records (else re-derived from the shape, as optimum-quanto does).
    /// </summary>
    /// <exception cref="QuantoFormatException">The module is not in the map, or its tensors disagree.</exception>
    public QuantizedModuleState ReadModule(string modulePath, ReadOnlySpan<long> weightShape, bool hasBias)
    {
        if (!QuantizationMap.TryGet(modulePath, out QuantizationSpec spec))
            throw new QuantoFormatException(Path, $"module '{modulePath}' is not in the quantization map.");
        int? group = _groupSizes.TryGetValue(modulePath, out int g) ? g : null;
        if (group is null && spec.Weights is QType q && q.Info().IsPacked && weightShape.Length >= 2 &&
            QuantizedModel.StoredGroupSizes(StateDict).TryGetValue(modulePath, out int requested))
        {
            long rowLength = 1;
            foreach (long d in weightShape[1..]) rowLength = checked(rowLength * d);
            group = GroupSize.Resolve(rowLength, requested);
        }
        return QuantizedModuleState.Read(StateDict, modulePath, spec, weightShape, hasBias, group);
    }

    /// <summary>Reports keys no module took (extra keys), instead of silently dropping them.</summary>
    public void ThrowIfUnconsumed() => StateDict.ThrowIfUnconsumed();

    /// <summary>
    /// Saves a checkpoint. For <c>.qnt</c>, one package (group sizes stored). For <c>.safetensors</c>, the weights
    /// (sharded when <paramref name="maxShardBytes"/> is given and exceeded) and the quantization map named after
    /// them (<see cref="QuantizationMap.FileNameFor"/>), as one crash-safe set that replaces the previous checkpoint
    /// of that name (its stale shards or index included).
    /// </summary>
    /// <param name="path">Target .qnt or .safetensors path.</param>
    /// <param name="modules">Each quantized module's path and state.</param>
    /// <param name="map">The quantization map.</param>
    /// <param name="otherTensors">Float tensors of other modules (norms, embeddings), by full key.</param>
    /// <param name="metadata">Free-form metadata.</param>
    /// <param name="maxShardBytes">Shard size limit for safetensors; null writes one file.</param>
    /// <exception cref="ArgumentException">Another extension (mlp.bin); or a 2/4-bit weight whose group size a
    /// safetensors reader cannot re-derive.</exception>
    /// <exception cref="IOException">The folder's quanto_qmap.json belongs to another checkpoint (saving
    /// model.safetensors would replace it).</exception>
    public static void Save(string path, IEnumerable<KeyValuePair<string, QuantizedModuleState>> modules,
        QuantizationMap map, IEnumerable<KeyValuePair<string, Tensor>>? otherTensors = null,
        IReadOnlyDictionary<string, string>? metadata = null, long? maxShardBytes = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(modules);
        ArgumentNullException.ThrowIfNull(map);
        bool qnt = path.EndsWith(QntPackage.Extension, StringComparison.OrdinalIgnoreCase);
        string baseName = qnt ? "" : CheckpointFiles.BaseNameOf(path); // refuses unknown extensions
        if (path.EndsWith(".index.json", StringComparison.Ordinal))
            throw new ArgumentException($"{path}: save to the .safetensors path; the index is written beside it.");
        using var package = new QntPackage();
        foreach (var (k, v) in metadata ?? new Dictionary<string, string>()) package.Metadata[k] = v;
        foreach (var (module, spec) in map) package.QuantizationMap.Add(module, spec);
        var groups = new JsonObject();
        foreach (var (module, state) in modules)
        {
            var plain = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            bool packed = map.TryGet(module, out QuantizationSpec spec) && spec.Weights is QType q && q.Info().IsPacked;
            if (packed && state.RequestedGroupSize is int g) groups[module] = g;
            if (state.Weight is QuantizedWeight w)
            {
                // Safetensors refuses group sizes a reader cannot re-derive, even with the recorded request.
                if (qnt) package.AddWeight(module, w);
                else QuantizedWeightState.Write(w, module, plain, state.RequestedGroupSize ?? GroupSize.Default);
            }
            state.WriteWithoutWeight(module, plain);
            foreach (var (k, t) in plain) package.Add(k, t);
        }
        foreach (var (k, t) in otherTensors ?? []) package.Add(k, t.alias());
        if (groups.Count > 0) package.Metadata[QuantizedModel.GroupSizesMetadataKey] = groups.ToJsonString();
        if (qnt)
        {
            package.Save(path);
            return;
        }
        string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        using FileSetWriter save = FileSetWriter.Begin(folder, severalFiles: true);
        string mapFile = CheckpointFiles.MapFileFor(baseName);
        CheckpointFiles.RefuseForeignMap(save.Folder, baseName);
        using (var writer = new ShardedWriter(save, baseName, maxShardBytes, package.Metadata, ownsTensors: false))
        {
            foreach (var (k, t) in package.Tensors) writer.Add(k, t.Tensor);
            writer.Finish(mapFile, CheckpointFiles.MapChecksum(package.QuantizationMap));
        }
        byte[] mapBytes = System.Text.Encoding.UTF8.GetBytes(package.QuantizationMap.ToJson());
        save.Write(mapFile, s => s.Write(mapBytes));
        save.Commit();
    }

    /// <summary>Disposes the tensors.</summary>
    public void Dispose() => StateDict.Dispose();
}
