using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// Sharded safetensors checkpoints as Hugging Face writes them: <c>model-00001-of-00003.safetensors</c> ... plus
/// <c>model.safetensors.index.json</c> = {"metadata": {"total_size": bytes}, "weight_map": {name: shard file}}.
/// </summary>
public static class ShardedSafetensors
{
    /// <summary>The index file name for the default base name.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    /// <summary>
    /// Loads a checkpoint: an index file (all shards), a folder (its index, else model.safetensors), or a single
    /// .safetensors file.
    /// </summary>
    /// <exception cref="QuantoFormatException">A file is malformed, a shard is missing, or the index and the
    /// shards disagree.</exception>
    public static StateDict Load(string path)
    {
        if (Directory.Exists(path))
        {
            string index = Path.Combine(path, IndexFileName);
            return File.Exists(index) ? LoadIndexed(index) : Safetensors.Load(Path.Combine(path, "model.safetensors"));
        }
        return path.EndsWith(".index.json", StringComparison.Ordinal) ? LoadIndexed(path) : Safetensors.Load(path);
    }

    /// <summary>
    /// Saves tensors into shards of at most <paramref name="maxShardBytes"/> bytes of data each (a tensor larger than
    /// that gets a shard of its own) plus the index. A checkpoint that fits one shard is written as
    /// <c>{baseName}.safetensors</c> without an index, as Hugging Face does.
    /// </summary>
    /// <returns>The files written, index last.</returns>
    public static IReadOnlyList<string> Save(string folder, IEnumerable<KeyValuePair<string, Tensor>> tensors,
        long maxShardBytes, IReadOnlyDictionary<string, string>? metadata = null, string baseName = "model")
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        var shards = new List<List<KeyValuePair<string, Tensor>>> { new() };
        long current = 0, total = 0;
        foreach (var item in tensors)
        {
            long bytes = TensorBytes.ByteCount(item.Value);
            if (current > 0 && current + bytes > maxShardBytes)
            {
                shards.Add([]);
                current = 0;
            }
            shards[^1].Add(item);
            current += bytes;
            total += bytes;
        }
        if (shards.Count == 1)
        {
            string single = Path.Combine(folder, baseName + ".safetensors");
            Safetensors.Save(single, shards[0], metadata);
            return [single];
        }
        var written = new List<string>();
        var weightMap = new JsonObject();
        for (int i = 0; i < shards.Count; i++)
        {
            string name = string.Create(CultureInfo.InvariantCulture,
                $"{baseName}-{i + 1:D5}-of-{shards.Count:D5}.safetensors");
            Safetensors.Save(Path.Combine(folder, name), shards[i], metadata);
            written.Add(Path.Combine(folder, name));
            foreach (var (key, _) in shards[i]) weightMap[key] = name;
        }
        var index = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = total },
            ["weight_map"] = weightMap,
        };
        // The index goes last: until it is replaced, readers keep following the previous one.
        string indexPath = Path.Combine(folder, baseName + ".safetensors.index.json");
        var options = new JsonSerializerOptions(SafetensorsWriter.JsonOptions) { WriteIndented = true };
        string text = index.ToJsonString(options);
        AtomicFile.Write(indexPath, s => s.Write(System.Text.Encoding.UTF8.GetBytes(text + "\n")));
        written.Add(indexPath);
        return written;
    }

    /// <summary>Loads all shards named by an index file, checking that index and shards agree key for key.</summary>
    public static StateDict LoadIndexed(string indexPath)
    {
        Dictionary<string, List<string>> byShard = ReadIndex(indexPath, out List<string> order);
        string folder = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        // Check every shard exists before reading gigabytes from the first ones.
        foreach (string shard in byShard.Keys)
        {
            if (!File.Exists(Path.Combine(folder, shard)))
                throw new QuantoFormatException(indexPath, $"shard '{shard}' named in the weight_map does not exist.");
        }
        var dict = new StateDict(indexPath);
        try
        {
            foreach (var (shard, keys) in byShard)
            {
                string shardPath = Path.Combine(folder, shard);
                using SafetensorsFile file = SafetensorsFile.Open(shardPath);
                var expected = keys.ToHashSet(StringComparer.Ordinal);
                string[] extra = file.Entries.Select(e => e.Name).Where(n => !expected.Contains(n)).ToArray();
                if (extra.Length > 0)
                {
                    throw new QuantoFormatException(shardPath,
                        $"holds key(s) the index does not list: {string.Join(", ", extra.Select(k => $"'{k}'"))}.");
                }
                foreach (string key in keys)
                {
                    if (!file.Contains(key))
                        throw new QuantoFormatException(shardPath, $"missing key '{key}' that the index places here.");
                }
                foreach (var (k, v) in file.Metadata) dict.Metadata.TryAdd(k, v);
                foreach (string key in keys) dict.Tensors[key] = file.Read(key);
            }
            // Present tensors in index order, independent of shard grouping.
            var ordered = order.Select(k => KeyValuePair.Create(k, dict.Tensors[k])).ToList();
            dict.Tensors.Clear();
            foreach (var (k, t) in ordered) dict.Tensors.Add(k, t);
            return dict;
        }
        catch
        {
            dict.Dispose();
            throw;
        }
    }

    private static Dictionary<string, List<string>> ReadIndex(string indexPath, out List<string> order)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllBytes(indexPath));
        }
        catch (Exception e) when (e is JsonException or ArgumentException) // ArgumentException: duplicate keys
        {
            throw new QuantoFormatException(indexPath, $"index is not valid JSON: {e.Message}", e);
        }
        if (root is not JsonObject obj || obj["weight_map"] is not JsonObject map)
            throw new QuantoFormatException(indexPath, "index has no 'weight_map' object.");
        var byShard = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        order = [];
        foreach (var (key, value) in map)
        {
            if (value is not JsonValue v || !v.TryGetValue(out string? shard))
                throw new QuantoFormatException(indexPath, $"weight_map entry '{key}' is not a file name.");
            // Shards live beside the index: a path here would let a checkpoint read arbitrary files.
            if (shard.Length == 0 || shard != Path.GetFileName(shard) || shard is "." or "..")
                throw new QuantoFormatException(indexPath,
                    $"weight_map entry '{key}' names '{shard}', not a file beside the index.");
            if (!byShard.TryGetValue(shard, out List<string>? keys)) byShard[shard] = keys = [];
            keys.Add(key);
            order.Add(key);
        }
        return byShard;
    }
}
