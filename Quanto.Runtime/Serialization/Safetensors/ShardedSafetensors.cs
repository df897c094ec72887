using System.Text.Json;
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
    /// .safetensors file. Files that Quanto.NET saved as one set are checked to come from one save.
    /// </summary>
    /// <exception cref="QuantoFormatException">A file is malformed, a shard is missing, the index and the shards
    /// disagree, or they come from different saves.</exception>
    public static StateDict Load(string path)
    {
        using SafetensorsSet set = FileSet.ReadSet(path, () => SafetensorsSet.Open(path), s => s.Mixed);
        StateDict dict = set.TakeStateDict();
        try
        {
            dict.ReadAll();
            return dict;
        }
        catch
        {
            dict.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Saves tensors into shards of at most <paramref name="maxShardBytes"/> bytes of data each (a tensor larger than
    /// that gets a shard of its own) plus the index. A checkpoint that fits one shard is written as
    /// <c>{baseName}.safetensors</c> without an index, as Hugging Face does. Crash-safe as a set: after a kill the
    /// folder holds the previous checkpoint or this one (see <see cref="AtomicFile"/>); the previous checkpoint's
    /// files under this base name that this one does not replace are removed.
    /// </summary>
    /// <returns>The files written, index last.</returns>
    public static IReadOnlyList<string> Save(string folder, IEnumerable<KeyValuePair<string, Tensor>> tensors,
        long maxShardBytes, IReadOnlyDictionary<string, string>? metadata = null, string baseName = "model")
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        ArgumentNullException.ThrowIfNull(tensors);
        if (!FileSet.IsPlainName(baseName + ".safetensors"))
            throw new ArgumentException($"'{baseName}' is not a file base name.", nameof(baseName));
        var list = tensors.ToList(); // enumerate once, before any file exists
        using FileSetWriter save = FileSetWriter.Begin(folder, severalFiles: true);
        using var writer = new ShardedWriter(save, baseName, maxShardBytes, metadata, ownsTensors: false);
        foreach (var item in list) writer.Add(item.Key, item.Value);
        List<string> names = writer.Finish(null, null);
        save.Commit();
        return names.Select(n => Path.Combine(save.Folder, n)).ToList();
    }

    /// <summary>Loads all shards named by an index file, checking that index and shards agree key for key.</summary>
    public static StateDict LoadIndexed(string indexPath) => Load(indexPath);

    /// <summary>
    /// The weight_map of an index file, in file order: tensor name -> shard file name, each checked to name a file
    /// beside the index (a path there would let a checkpoint read arbitrary files).
    /// </summary>
    /// <exception cref="QuantoFormatException">The index is not UTF-8 JSON, repeats a key, has no weight_map
    /// object, or an entry is not a plain file name.</exception>
    public static IReadOnlyList<KeyValuePair<string, string>> ReadWeightMap(string indexPath) =>
        ReadIndex(indexPath, out _);

    /// <summary>The weight_map (see <see cref="ReadWeightMap"/>) and our record among the index's metadata.</summary>
    internal static List<KeyValuePair<string, string>> ReadIndex(string indexPath, out CheckpointFiles.Record? record)
    {
        using JsonDocument document = StrictJson.ParseFile(indexPath, "index");
        JsonElement root = StrictJson.RootObject(document, indexPath, "index");
        record = root.TryGetProperty("metadata", out JsonElement metadata) &&
            metadata.ValueKind == JsonValueKind.Object &&
            metadata.TryGetProperty(CheckpointFiles.RecordKey, out JsonElement r)
            ? CheckpointFiles.Record.From(r, indexPath)
            : null;
        if (!root.TryGetProperty("weight_map", out JsonElement map) || map.ValueKind != JsonValueKind.Object)
            throw new QuantoFormatException(indexPath, "index has no 'weight_map' object.");
        var entries = new List<KeyValuePair<string, string>>();
        foreach (JsonProperty entry in map.EnumerateObject())
        {
            string? shard = StrictJson.StringOrNull(entry.Value);
            if (shard is null)
                throw new QuantoFormatException(indexPath, $"weight_map entry '{entry.Name}' is not a file name.");
            if (shard.Length == 0 || shard != Path.GetFileName(shard) || shard is "." or ".." ||
                shard.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0)
            {
                throw new QuantoFormatException(indexPath,
                    $"weight_map entry '{entry.Name}' names '{shard}', not a file beside the index.");
            }
            entries.Add(KeyValuePair.Create(entry.Name, shard));
        }
        return entries;
    }
}
