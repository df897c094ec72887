using System.Text.Json;
using System.Text.Json.Nodes;
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
/// shards, or a folder holding either. Only headers are read up front; tensors are read one at a time.
/// </summary>
public sealed class CheckpointSource : IDisposable
{
    private readonly List<SafetensorsFile> _files = [];

    private CheckpointSource(string path) => Path = path;

    /// <summary>What was opened (file, index or folder).</summary>
    public string Path { get; }

    /// <summary>The files read: the shards, or the single file.</summary>
    public IReadOnlyList<string> Files => _files.Select(f => f.Source).ToArray();

    /// <summary>The folder the checkpoint lives in (where quanto_qmap.json would be).</summary>
    public string Folder { get; private set; } = ".";

    /// <summary>Every tensor, in index order (or file order for a single file).</summary>
    public List<SourceTensor> Tensors { get; } = [];

    /// <summary>Metadata of the first file (without Quanto.NET's checksum record).</summary>
    public IReadOnlyDictionary<string, string> Metadata => _files.Count > 0
        ? _files[0].Metadata
        : new Dictionary<string, string>();

    /// <summary>Total bytes of tensor data.</summary>
    public long DataBytes => Tensors.Sum(t => t.Entry.ByteLength);

    /// <summary>Opens a checkpoint; headers are validated now.</summary>
    /// <exception cref="FileNotFoundException">Nothing at <paramref name="path"/>.</exception>
    /// <exception cref="QuantoFormatException">A header or the index is malformed, or index and shards disagree.</exception>
    public static CheckpointSource Open(string path)
    {
        var source = new CheckpointSource(path);
        try
        {
            string file = Resolve(path);
            source.Folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(file))!;
            if (file.EndsWith(".index.json", StringComparison.Ordinal)) source.OpenIndexed(file);
            else source.OpenSingle(file);
            return source;
        }
        catch
        {
            source.Dispose();
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

    private void OpenSingle(string file)
    {
        SafetensorsFile opened = SafetensorsFile.Open(file);
        _files.Add(opened);
        foreach (SafetensorsEntry entry in opened.Entries) Tensors.Add(new SourceTensor(entry, opened));
    }

    private void OpenIndexed(string indexPath)
    {
        List<KeyValuePair<string, string>> weightMap = ReadWeightMap(indexPath);
        var byShard = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        foreach (string shard in weightMap.Select(p => p.Value).Distinct())
        {
            string shardPath = System.IO.Path.Combine(Folder, shard);
            if (!File.Exists(shardPath))
                throw new QuantoFormatException(indexPath, $"shard '{shard}' named in the weight_map does not exist.");
            SafetensorsFile opened = SafetensorsFile.Open(shardPath);
            _files.Add(opened);
            byShard[shard] = opened;
        }
        var listed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, shard) in weightMap)
        {
            SafetensorsFile file = byShard[shard];
            if (!file.Contains(key))
                throw new QuantoFormatException(file.Source, $"missing key '{key}' that the index places here.");
            Tensors.Add(new SourceTensor(file.Entry(key), file));
            listed.Add(key);
        }
        foreach (SafetensorsFile file in _files)
        {
            string[] extra = file.Entries.Select(e => e.Name).Where(n => !listed.Contains(n)).ToArray();
            if (extra.Length > 0)
                throw new QuantoFormatException(file.Source,
                    $"holds key(s) the index does not list: {string.Join(", ", extra.Select(k => $"'{k}'"))}.");
        }
    }

    /// <summary>The weight_map of an index, in order, with each shard checked to be a file beside the index.</summary>
    internal static List<KeyValuePair<string, string>> ReadWeightMap(string indexPath)
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
        if (root is not JsonObject obj || obj["weight_map"] is not JsonObject map)
            throw new QuantoFormatException(indexPath, "index has no 'weight_map' object.");
        var result = new List<KeyValuePair<string, string>>();
        foreach (var (key, value) in map)
        {
            if (value is not JsonValue v || !v.TryGetValue(out string? shard))
                throw new QuantoFormatException(indexPath, $"weight_map entry '{key}' is not a file name.");
            if (shard.Length == 0 || shard != System.IO.Path.GetFileName(shard) || shard is "." or "..")
                throw new QuantoFormatException(indexPath,
                    $"weight_map entry '{key}' names '{shard}', not a file beside the index.");
            result.Add(KeyValuePair.Create(key, shard));
        }
        return result;
    }

    /// <summary>Closes every file.</summary>
    public void Dispose()
    {
        foreach (SafetensorsFile file in _files) file.Dispose();
        _files.Clear();
    }
}
