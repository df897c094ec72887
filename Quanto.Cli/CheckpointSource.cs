using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto.Cli;

/// <summary>One tensor of an input checkpoint: its description and the shard file that holds it.</summary>
/// <param name="Entry">The safetensors description (name, dtype, shape, offsets).</param>
/// <param name="File">The open shard.</param>
public sealed record SourceTensor(SafetensorsEntry Entry, SafetensorsFile File)
{
    /// <summary>The key.</summary>
    public string Name => Entry.Name;

    /// <summary>Reads the tensor from its shard (verifying its checksum when the file has them).</summary>
    public Tensor Read() => File.Read(Entry.Name);
}

/// <summary>
/// A safetensors checkpoint opened for streaming: a single file, a <c>*.safetensors.index.json</c> index with its
/// shards, or a folder holding either. Only headers are read up front; tensors are read one at a time. Opened as
/// the runtime opens a checkpoint: interrupted saves are finished first, and files of two saves are refused.
/// </summary>
public sealed class CheckpointSource : IDisposable
{
    private readonly SafetensorsSet _set;

    private CheckpointSource(string path, SafetensorsSet set)
    {
        Path = path;
        _set = set;
        Folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(set.WeightsPath))!;
        foreach (var (entry, file) in set.Source.Entries) Tensors.Add(new SourceTensor(entry, file));
    }

    /// <summary>What was opened (file, index or folder).</summary>
    public string Path { get; }

    /// <summary>The file that names the checkpoint: the index, or the single weights file.</summary>
    public string WeightsPath => _set.WeightsPath;

    /// <summary>The files read: the shards, or the single file.</summary>
    public IReadOnlyList<string> Files => _set.Source.Files.Select(f => f.Source).ToArray();

    /// <summary>The folder the checkpoint lives in (where its quantization map would be).</summary>
    public string Folder { get; }

    /// <summary>Every tensor, in index order (or file order for a single file).</summary>
    public List<SourceTensor> Tensors { get; } = [];

    /// <summary>Metadata of the first file (without Quanto.NET's checksum record).</summary>
    public IReadOnlyDictionary<string, string> Metadata => _set.Source.Files[0].Metadata;

    /// <summary>The save record of the file that names the checkpoint (null: not written by this version).</summary>
    internal CheckpointFiles.Record? Record => _set.Record;

    /// <summary>Total bytes of tensor data.</summary>
    public long DataBytes => Tensors.Sum(t => t.Entry.ByteLength);

    /// <summary>Opens a checkpoint; headers are validated now.</summary>
    /// <exception cref="FileNotFoundException">Nothing at <paramref name="path"/>.</exception>
    /// <exception cref="QuantoFormatException">A header or the index is malformed, index and shards disagree, or
    /// they come from different saves.</exception>
    public static CheckpointSource Open(string path)
    {
        Resolve(path); // a missing file or folder is reported before any retry
        SafetensorsSet set = FileSet.ReadSet(path, () => SafetensorsSet.Open(Resolve(path)), s => s.Mixed);
        try
        {
            return new CheckpointSource(path, set);
        }
        catch
        {
            set.Dispose();
            throw;
        }
    }

    /// <summary>The file to open for a path: the path itself, or a folder's index or model.safetensors.</summary>
    internal static string Resolve(string path)
    {
        if (Directory.Exists(path))
        {
            string index = System.IO.Path.Combine(path, ShardedSafetensors.IndexFileName);
            if (File.Exists(index)) return index;
            string single = System.IO.Path.Combine(path, "model.safetensors");
            if (File.Exists(single)) return single;
            throw new FileNotFoundException(
                $"{path} is a folder without {ShardedSafetensors.IndexFileName} or model.safetensors.");
        }
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file or folder.");
        return path;
    }

    /// <summary>Closes every file.</summary>
    public void Dispose() => _set.Dispose();
}
