using System.Text.Json;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// Writes a checkpoint's tensors as Hugging Face does, inside one crash-safe save (<see cref="FileSetWriter"/>):
/// shards of at most a given size, written as they fill (memory stays near one shard), named
/// <c>{base}-0000i-of-0000N.safetensors</c> once N is known, plus <c>{base}.safetensors.index.json</c>; or a single
/// <c>{base}.safetensors</c> when everything fits one shard. Files of the previous checkpoint under that base name
/// that the new one does not replace (its other shards, its index or single file) are removed at the commit. Each
/// file carries the save's record (<see cref="CheckpointFiles"/>).
/// </summary>
internal sealed class ShardedWriter : IDisposable
{
    private readonly FileSetWriter _save;
    private readonly string _baseName;
    private readonly long _maxShardBytes;
    private readonly IReadOnlyDictionary<string, string> _metadata;
    private readonly bool _ownsTensors;
    private readonly List<KeyValuePair<string, Tensor>> _pending = [];
    private readonly List<(FileSetWriter.Staged File, List<string> Keys)> _shards = [];
    private long _pendingBytes;

    /// <summary>Starts writing.</summary>
    /// <param name="save">The save the files belong to.</param>
    /// <param name="baseName">The base name ("model").</param>
    /// <param name="maxShardBytes">Most tensor bytes per shard (null: one file).</param>
    /// <param name="metadata">Metadata for every file (the record and checksums are added).</param>
    /// <param name="ownsTensors">Dispose each tensor once it is written.</param>
    internal ShardedWriter(FileSetWriter save, string baseName, long? maxShardBytes,
        IReadOnlyDictionary<string, string>? metadata, bool ownsTensors)
    {
        if (maxShardBytes is <= 0) throw new ArgumentOutOfRangeException(nameof(maxShardBytes));
        _save = save;
        _baseName = baseName;
        _maxShardBytes = maxShardBytes ?? long.MaxValue;
        _metadata = metadata ?? new Dictionary<string, string>();
        _ownsTensors = ownsTensors;
    }

    /// <summary>Bytes of tensor data added.</summary>
    internal long DataBytes { get; private set; }

    /// <summary>Adds tensors that stay in one shard (a quantized weight's parts).</summary>
    internal void Add(IReadOnlyList<KeyValuePair<string, Tensor>> group)
    {
        long bytes = group.Sum(p => TensorBytes.ByteCount(p.Value));
        if (_pendingBytes > 0 && _pendingBytes + bytes > _maxShardBytes) Flush();
        _pending.AddRange(group);
        _pendingBytes += bytes;
        DataBytes += bytes;
    }

    /// <summary>Adds one tensor.</summary>
    internal void Add(string name, Tensor tensor) => Add([KeyValuePair.Create(name, tensor)]);

    /// <summary>
    /// Writes what is pending and the index; returns the file names (the index last). The map, if any, is written
    /// by the caller into the same save: its name and checksum go into the record.
    /// </summary>
    internal List<string> Finish(string? mapFile, string? mapChecksum)
    {
        var record = new CheckpointFiles.Record(_save.Generation, mapFile, mapChecksum);
        var stale = Directory.EnumerateFiles(_save.Folder, _baseName + "*").Select(Path.GetFileName).OfType<string>()
            .Where(n => CheckpointFiles.IsShardOf(n, _baseName)).ToList();
        string single = _baseName + ".safetensors", index = CheckpointFiles.IndexFileFor(_baseName);
        if (_shards.Count == 0)
        {
            WriteFile(single, record);
            _save.DeleteAtCommit(index);
            foreach (string shard in stale) _save.DeleteAtCommit(shard);
            return [single];
        }
        if (_pending.Count > 0) Flush();
        var names = new List<string>();
        for (int i = 0; i < _shards.Count; i++)
        {
            _shards[i].File.Target = CheckpointFiles.ShardFileFor(_baseName, i + 1, _shards.Count);
            names.Add(_shards[i].File.Target!);
        }
        byte[] text = IndexJson(names, record);
        _save.Write(index, s => s.Write(text));
        _save.DeleteAtCommit(single);
        foreach (string shard in stale.Except(names, StringComparer.Ordinal)) _save.DeleteAtCommit(shard);
        names.Add(index);
        return names;
    }

    private void Flush()
    {
        // Shards name their save only: the map is known once every tensor has been seen.
        var shard = WriteFile(null, new CheckpointFiles.Record(_save.Generation, null, null));
        _shards.Add((shard, _pending.Select(p => p.Key).ToList()));
        DisposePending();
    }

    private FileSetWriter.Staged WriteFile(string? target, CheckpointFiles.Record record)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in _metadata) metadata[k] = v;
        metadata[CheckpointFiles.RecordKey] = record.ToJson(); // replaces the record of a file this one came from
        FileSetWriter.Staged file = _save.Write(target,
            stream => SafetensorsWriter.Write(stream, _pending, metadata, checksums: true));
        if (target is not null) DisposePending();
        return file;
    }

    /// <summary>The index as transformers writes it: {"metadata": {"total_size": bytes}, "weight_map": {...}}
    /// (indented 2, keys sorted), plus our record among the metadata.</summary>
    private byte[] IndexJson(List<string> names, CheckpointFiles.Record record)
    {
        using var buffer = new MemoryStream();
        var options = new JsonWriterOptions { Indented = true, Encoder = SafetensorsWriter.JsonOptions.Encoder };
        using (var json = new Utf8JsonWriter(buffer, options))
        {
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WritePropertyName(CheckpointFiles.RecordKey);
            using (JsonDocument parsed = JsonDocument.Parse(record.ToJson())) parsed.WriteTo(json);
            json.WriteNumber("total_size", DataBytes);
            json.WriteEndObject();
            json.WriteStartObject("weight_map");
            var entries = _shards.SelectMany((s, i) => s.Keys.Select(k => (Key: k, File: names[i])));
            foreach (var (key, file) in entries.OrderBy(e => e.Key, StringComparer.Ordinal))
                json.WriteString(key, file);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        buffer.Write("\n"u8);
        return buffer.ToArray();
    }

    private void DisposePending()
    {
        if (_ownsTensors)
        {
            foreach (var (_, t) in _pending) t.Dispose();
        }
        _pending.Clear();
        _pendingBytes = 0;
    }

    /// <summary>Frees pending tensors it owns (the save removes what was written).</summary>
    public void Dispose() => DisposePending();
}
