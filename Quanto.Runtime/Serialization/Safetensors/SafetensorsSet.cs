namespace Quanto.Serialization;

/// <summary>
/// The safetensors files of one checkpoint opened together (headers only): a single file, or an index and all its
/// shards, as a lazy <see cref="StateDict"/>, with the save record they carry (<see cref="CheckpointFiles"/>) and,
/// when they come from different saves, what is mixed.
/// </summary>
internal sealed class SafetensorsSet : IDisposable
{
    private StateDict? _stateDict;

    private SafetensorsSet(string weightsPath, SafetensorsSource source, CheckpointFiles.Record? record,
        string? mixed)
    {
        WeightsPath = weightsPath;
        Source = source;
        _stateDict = new StateDict(weightsPath, source, source.Metadata());
        Record = record;
        Mixed = mixed;
    }

    /// <summary>The open files and their tensors (owned by the state dict).</summary>
    internal SafetensorsSource Source { get; }

    /// <summary>The file that names the set: the index, or the single weights file.</summary>
    internal string WeightsPath { get; }

    /// <summary>The record of the file that names the set; null when not written by this version.</summary>
    internal CheckpointFiles.Record? Record { get; }

    /// <summary>Why the files are not one save's (shards of different saves); null when they are, or cannot tell.
    /// </summary>
    internal string? Mixed { get; }

    /// <summary>The tensors; the caller takes ownership (the set no longer disposes them).</summary>
    internal StateDict TakeStateDict()
    {
        StateDict dict = _stateDict ?? throw new InvalidOperationException("The state dict was taken already.");
        _stateDict = null;
        return dict;
    }

    /// <summary>The tensors, still owned by the set.</summary>
    internal StateDict StateDict => _stateDict ?? throw new InvalidOperationException("The state dict was taken.");

    /// <summary>Opens a file, an index or a folder (its model.safetensors.index.json, else model.safetensors).
    /// </summary>
    /// <exception cref="QuantoFormatException">A file is malformed, a shard is missing, or index and shards
    /// disagree on their keys.</exception>
    internal static SafetensorsSet Open(string path)
    {
        string weights = Directory.Exists(path)
            ? File.Exists(Path.Combine(path, ShardedSafetensors.IndexFileName))
                ? Path.Combine(path, ShardedSafetensors.IndexFileName)
                : Path.Combine(path, CheckpointFiles.DefaultBase + ".safetensors")
            : path;
        return weights.EndsWith(".index.json", StringComparison.Ordinal) ? OpenIndexed(weights) : OpenSingle(weights);
    }

    private static SafetensorsSet OpenSingle(string path)
    {
        SafetensorsFile file = SafetensorsFile.OpenFile(path);
        try
        {
            CheckpointFiles.Record? record = CheckpointFiles.Record.From(file.Metadata, path);
            return new SafetensorsSet(path, SafetensorsSource.Of(file), record, null);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static SafetensorsSet OpenIndexed(string indexPath)
    {
        List<KeyValuePair<string, string>> weightMap = ShardedSafetensors.ReadIndex(indexPath,
            out CheckpointFiles.Record? record);
        string folder = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        var byShard = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var (key, shard) in weightMap)
        {
            if (!byShard.TryGetValue(shard, out List<string>? keys)) byShard[shard] = keys = [];
            keys.Add(key);
        }
        // Check every shard exists before opening any.
        foreach (string shard in byShard.Keys)
        {
            if (!File.Exists(Path.Combine(folder, shard)))
                throw new QuantoFormatException(indexPath, $"shard '{shard}' named in the weight_map does not exist.");
        }
        var files = new List<SafetensorsFile>();
        try
        {
            var fileOf = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            string? mixed = null;
            foreach (var (shard, keys) in byShard)
            {
                SafetensorsFile file = SafetensorsFile.OpenFile(Path.Combine(folder, shard));
                files.Add(file);
                CheckShard(file, keys);
                foreach (string key in keys) fileOf[key] = file;
                mixed ??= MixedShard(file, shard, record, files[0]);
            }
            SafetensorsSource source = SafetensorsSource.Of(files, weightMap.Select(p => (p.Key, fileOf[p.Key])));
            return new SafetensorsSet(indexPath, source, record, mixed);
        }
        catch
        {
            foreach (SafetensorsFile file in files) file.Dispose();
            throw;
        }
    }

    /// <summary>A shard whose save differs from the index's (or, with an index from another writer, from the first
    /// shard's): the kind of mix a kill during an older version's save left.</summary>
    private static string? MixedShard(SafetensorsFile file, string shard, CheckpointFiles.Record? index,
        SafetensorsFile first)
    {
        string? generation = CheckpointFiles.Record.From(file.Metadata, file.Source)?.Generation;
        if (index is not null)
        {
            return generation == index.Generation
                ? null
                : $"shard '{shard}' is from {(generation is null ? "another writer" : $"save {generation}")}, the " +
                  $"index from save {index.Generation}: a mix of two checkpoints (an interrupted save?). Save the " +
                  "checkpoint again.";
        }
        string? firstGeneration = CheckpointFiles.Record.From(first.Metadata, first.Source)?.Generation;
        return generation == firstGeneration
            ? null
            : $"shards '{Path.GetFileName(first.Source)}' and '{shard}' are from different saves " +
              $"({firstGeneration ?? "none"} and {generation ?? "none"}): a mix of two checkpoints. Save it again.";
    }

    /// <summary>Checks a shard holds exactly the keys the index places in it.</summary>
    private static void CheckShard(SafetensorsFile file, List<string> keys)
    {
        var expected = keys.ToHashSet(StringComparer.Ordinal);
        string[] extra = file.Entries.Select(e => e.Name).Where(n => !expected.Contains(n)).ToArray();
        if (extra.Length > 0)
        {
            throw new QuantoFormatException(file.Source,
                $"holds key(s) the index does not list: {string.Join(", ", extra.Take(20).Select(k => $"'{k}'"))}" +
                (extra.Length > 20 ? $", ... ({extra.Length - 20} more)." : "."));
        }
        foreach (string key in keys)
        {
            if (!file.Contains(key))
                throw new QuantoFormatException(file.Source, $"missing key '{key}' that the index places here.");
        }
    }

    /// <summary>Closes the files, unless the state dict was taken.</summary>
    public void Dispose() => _stateDict?.Dispose();
}
