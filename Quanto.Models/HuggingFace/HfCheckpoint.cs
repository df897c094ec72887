using System.Text.Json;
using System.Text.Json.Nodes;
using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto.Models.HuggingFace;

/// <summary>
/// The weights of a Hugging Face checkpoint folder: <c>model.safetensors</c>, or the shards that
/// <c>model.safetensors.index.json</c> names. Every file's header is read and validated when the checkpoint is
/// opened (a truncated shard fails here, naming the file and the tensor that runs past its end); tensors are then
/// read one at a time, straight from the file into tensor memory, so loading never holds a second copy of the
/// checkpoint and one larger than half the RAM loads.
/// </summary>
public sealed class HfCheckpoint : IDisposable
{
    /// <summary>The single-file weights name.</summary>
    public const string WeightsFileName = "model.safetensors";

    private readonly Dictionary<string, SafetensorsFile> _files = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (SafetensorsFile File, SafetensorsEntry Entry)> _tensors =
        new(StringComparer.Ordinal);

    private HfCheckpoint(string source) => Source = source;

    /// <summary>The weights file or index (for messages).</summary>
    public string Source { get; }

    /// <summary>Every tensor name, in file (or index) order.</summary>
    public IReadOnlyList<string> Keys { get; private set; } = [];

    /// <summary>Opens the weights of a checkpoint folder.</summary>
    /// <exception cref="QuantoFormatException">No weights file, an index naming a missing shard, a shard holding
    /// keys the index does not list, or a malformed or truncated file.</exception>
    public static HfCheckpoint Open(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        string index = Path.Combine(folder, ShardedSafetensors.IndexFileName);
        string single = Path.Combine(folder, WeightsFileName);
        if (File.Exists(index)) return OpenIndexed(index);
        if (File.Exists(single)) return OpenFiles(single, [(single, null)]);
        string hint = File.Exists(Path.Combine(folder, "pytorch_model.bin"))
            ? " It holds pytorch_model.bin (pickle), which is not read: save the model with safe_serialization=True."
            : "";
        throw new QuantoFormatException(folder, $"no {WeightsFileName} or {ShardedSafetensors.IndexFileName}.{hint}");
    }

    /// <summary>True when the checkpoint holds <paramref name="key"/>.</summary>
    public bool Contains(string key) => _tensors.ContainsKey(key);

    /// <summary>The description (dtype, shape) of one tensor, without reading it.</summary>
    /// <exception cref="QuantoFormatException">No such key.</exception>
    public SafetensorsEntry Entry(string key) => Locate(key).Entry;

    /// <summary>The file holding <paramref name="key"/>.</summary>
    public string FileOf(string key) => Locate(key).File.Source;

    /// <summary>Reads one tensor into a new CPU tensor (the file's dtype) that the caller owns.</summary>
    /// <exception cref="QuantoFormatException">No such key, or the data cannot be read.</exception>
    public Tensor Read(string key) => Locate(key).File.Read(key);

    /// <summary>Closes the files.</summary>
    public void Dispose()
    {
        foreach (SafetensorsFile file in _files.Values) file.Dispose();
        _files.Clear();
        _tensors.Clear();
    }

    private (SafetensorsFile File, SafetensorsEntry Entry) Locate(string key) =>
        _tensors.TryGetValue(key, out var found)
            ? found
            : throw new QuantoFormatException(Source, $"missing key '{key}' ({_tensors.Count} tensors present).");

    private static HfCheckpoint OpenIndexed(string indexPath)
    {
        var shards = new List<(string Path, HashSet<string>? Keys)>();
        var byShard = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        string folder = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        foreach ((string key, string shard) in ReadWeightMap(indexPath))
        {
            if (!byShard.TryGetValue(shard, out HashSet<string>? keys))
            {
                string shardPath = Path.Combine(folder, shard);
                if (!File.Exists(shardPath))
                {
                    throw new QuantoFormatException(indexPath,
                        $"shard '{shard}' named in the weight_map (for '{key}') does not exist.");
                }
                byShard[shard] = keys = new HashSet<string>(StringComparer.Ordinal);
                shards.Add((shardPath, keys));
            }
            keys.Add(key);
        }
        return OpenFiles(indexPath, shards);
    }

    private static HfCheckpoint OpenFiles(string source, List<(string Path, HashSet<string>? Keys)> files)
    {
        var checkpoint = new HfCheckpoint(source);
        var order = new List<string>();
        try
        {
            foreach ((string path, HashSet<string>? expected) in files)
            {
                SafetensorsFile file = SafetensorsFile.Open(path);
                checkpoint._files[path] = file;
                foreach (SafetensorsEntry entry in file.Entries.OrderBy(e => e.Begin))
                {
                    if (expected is not null && !expected.Contains(entry.Name))
                    {
                        throw new QuantoFormatException(path,
                            $"holds '{entry.Name}', which {Path.GetFileName(source)} does not place in this shard.");
                    }
                    checkpoint._tensors[entry.Name] = (file, entry);
                    order.Add(entry.Name);
                }
                string? absent = expected?.FirstOrDefault(k => !file.Contains(k));
                if (absent is not null)
                    throw new QuantoFormatException(path, $"missing key '{absent}' that the index places here.");
            }
            checkpoint.Keys = order;
            return checkpoint;
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    private static List<(string Key, string Shard)> ReadWeightMap(string indexPath)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllBytes(indexPath));
        }
        catch (Exception e) when (e is JsonException or ArgumentException)
        {
            throw new QuantoFormatException(indexPath, $"index is not valid JSON: {e.Message}", e);
        }
        if (root is not JsonObject { } obj || obj["weight_map"] is not JsonObject map)
            throw new QuantoFormatException(indexPath, "index has no 'weight_map' object.");
        var entries = new List<(string, string)>();
        foreach ((string key, JsonNode? value) in map)
        {
            // Shards live beside the index: a path here would let a checkpoint read arbitrary files.
            if (value is not JsonValue v || !v.TryGetValue(out string? shard) || shard.Length == 0 ||
                shard != Path.GetFileName(shard) || shard is "." or "..")
            {
                throw new QuantoFormatException(indexPath,
                    $"weight_map entry '{key}' must name a file beside the index; got {value?.ToJsonString()}.");
            }
            entries.Add((key, shard));
        }
        return entries;
    }
}
