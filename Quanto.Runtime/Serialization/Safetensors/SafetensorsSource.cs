using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// Tensors described by the headers of open safetensors files (one file, or the shards of an index), read from the
/// file only when a <see cref="StateDict"/> is asked for them. Loading a model therefore checks the keys, shapes and
/// dtypes it needs against the headers before any data is read, and never reads a tensor it rejects.
/// </summary>
internal sealed class SafetensorsSource : ITensorSource
{
    private readonly List<SafetensorsFile> _files;
    private readonly OrderedDictionary<string, (SafetensorsEntry Entry, SafetensorsFile File)> _entries;

    private SafetensorsSource(List<SafetensorsFile> files,
        OrderedDictionary<string, (SafetensorsEntry, SafetensorsFile)> entries)
    {
        _files = files;
        _entries = entries;
    }

    /// <summary>A source over one open file, in file order; it takes the file.</summary>
    internal static SafetensorsSource Of(SafetensorsFile file)
    {
        var entries = new OrderedDictionary<string, (SafetensorsEntry, SafetensorsFile)>(StringComparer.Ordinal);
        foreach (SafetensorsEntry entry in file.Entries) entries.Add(entry.Name, (entry, file));
        return new SafetensorsSource([file], entries);
    }

    /// <summary>A source over the shards of an index, in index order; it takes the files.</summary>
    internal static SafetensorsSource Of(List<SafetensorsFile> files,
        IEnumerable<(string Key, SafetensorsFile File)> order)
    {
        var entries = new OrderedDictionary<string, (SafetensorsEntry, SafetensorsFile)>(StringComparer.Ordinal);
        foreach (var (key, file) in order) entries.Add(key, (file.Entry(key), file));
        return new SafetensorsSource(files, entries);
    }

    /// <summary>The metadata of every file, the first file's value winning.</summary>
    internal Dictionary<string, string> Metadata()
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (SafetensorsFile file in _files)
        {
            foreach (var (k, v) in file.Metadata) metadata.TryAdd(k, v);
        }
        return metadata;
    }

    /// <summary>The open files (the single file, or the shards in index order of first use).</summary>
    internal IReadOnlyList<SafetensorsFile> Files => _files;

    /// <summary>Every tensor's description and file, in order.</summary>
    internal IEnumerable<(SafetensorsEntry Entry, SafetensorsFile File)> Entries => _entries.Values;

    public IEnumerable<string> Keys => _entries.Keys;

    public int Count => _entries.Count;

    public bool Contains(string key) => _entries.ContainsKey(key);

    public (ScalarType DType, IReadOnlyList<long> Shape)? Describe(string key) =>
        _entries.TryGetValue(key, out var e) ? (e.Entry.DType, e.Entry.Shape) : null;

    public Tensor Read(string key) => _entries[key].File.Read(key);

    public void Dispose()
    {
        foreach (SafetensorsFile file in _files) file.Dispose();
        _files.Clear();
    }
}
