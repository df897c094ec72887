using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Quanto.Serialization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Cli;

/// <summary>
/// Receives the output tensors one module at a time and writes the files. Safetensors output is written in shards
/// of at most <see cref="QuantizeOptions.MaxShardBytes"/> as they fill, so memory stays bounded by one shard; a
/// .qnt package is one MessagePack document and is held until the end.
/// </summary>
public abstract class QuantizedOutput : IDisposable
{
    /// <summary>The quantization map of the modules added so far.</summary>
    public QuantizationMap Map { get; } = new();

    /// <summary>Bytes of tensor data added.</summary>
    public long DataBytes { get; protected set; }

    /// <summary>The files written, once <see cref="Finish"/> ran.</summary>
    public List<string> Written { get; } = [];

    /// <summary>Creates the writer for the options' format.</summary>
    public static QuantizedOutput Create(QuantizeOptions options, IReadOnlyDictionary<string, string> metadata) =>
        options.Format == OutputFormat.Qnt
            ? new QntOutput(options.Output, metadata)
            : new SafetensorsOutput(options.Output, options.MaxShardBytes, metadata);

    /// <summary>Adds a plain tensor; the output takes ownership.</summary>
    public abstract void Add(string name, Tensor tensor);

    /// <summary>Adds a quantized weight (the output keeps views; the caller still disposes the weight).</summary>
    public abstract void AddWeight(string module, QuantizedWeight weight);

    /// <summary>Writes whatever is pending and the final files.</summary>
    public abstract void Finish();

    /// <summary>Frees pending tensors and removes temporary files.</summary>
    public abstract void Dispose();

    /// <summary>Bytes of a tensor's data.</summary>
    protected static long ByteCount(Tensor t) => t.NumberOfElements * t.ElementSize;
}

/// <summary>optimum-quanto layout: model.safetensors (or shards + index) and quanto_qmap.json.</summary>
internal sealed class SafetensorsOutput(string path, long maxShardBytes, IReadOnlyDictionary<string, string> metadata)
    : QuantizedOutput
{
    private readonly List<KeyValuePair<string, Tensor>> _pending = [];
    private readonly List<(string Temp, List<string> Keys)> _shards = [];
    private long _pendingBytes;

    public override void Add(string name, Tensor tensor)
    {
        long bytes = ByteCount(tensor);
        if (_pendingBytes > 0 && _pendingBytes + bytes > maxShardBytes) FlushShard();
        _pending.Add(KeyValuePair.Create(name, tensor));
        _pendingBytes += bytes;
        DataBytes += bytes;
    }

    public override void AddWeight(string module, QuantizedWeight weight)
    {
        var parts = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        QuantizedWeightState.Write(weight, module, parts);
        long bytes = parts.Values.Sum(ByteCount);
        if (_pendingBytes > 0 && _pendingBytes + bytes > maxShardBytes) FlushShard(); // a weight's parts stay together
        foreach (var (k, t) in parts)
        {
            _pending.Add(KeyValuePair.Create(k, t));
            _pendingBytes += ByteCount(t);
            DataBytes += ByteCount(t);
        }
    }

    private string Folder => Path.GetDirectoryName(Path.GetFullPath(path))!;

    private string BaseName => Path.GetFileNameWithoutExtension(path);

    private void FlushShard()
    {
        string temp = Path.Combine(Folder, $".{BaseName}.{Guid.NewGuid():N}.shard.tmp");
        var keys = _pending.Select(p => p.Key).ToList();
        _shards.Add((temp, keys)); // registered first, so Dispose removes it if the save fails half-way
        Safetensors.Save(temp, _pending, metadata);
        ClearPending();
    }

    private void ClearPending()
    {
        foreach (var (_, t) in _pending) t.Dispose();
        _pending.Clear();
        _pendingBytes = 0;
    }

    public override void Finish()
    {
        if (_shards.Count == 0)
        {
            Safetensors.Save(path, _pending, metadata);
            ClearPending();
            Written.Add(path);
            // Reached with --force only: a stale index from an earlier sharded run would win over the new file.
            string staleIndex = Path.Combine(Folder, BaseName + ".safetensors.index.json");
            if (File.Exists(staleIndex)) File.Delete(staleIndex);
        }
        else
        {
            if (_pending.Count > 0) FlushShard();
            var weightMap = new JsonObject();
            for (int i = 0; i < _shards.Count; i++)
            {
                string name = string.Create(CultureInfo.InvariantCulture,
                    $"{BaseName}-{i + 1:D5}-of-{_shards.Count:D5}.safetensors");
                string shardPath = Path.Combine(Path.GetDirectoryName(path) ?? "", name);
                File.Move(_shards[i].Temp, shardPath, overwrite: true);
                Written.Add(shardPath);
                foreach (string key in _shards[i].Keys) weightMap[key] = name;
            }
            _shards.Clear();
            var index = new JsonObject
            {
                ["metadata"] = new JsonObject { ["total_size"] = DataBytes },
                ["weight_map"] = weightMap,
            };
            string indexPath =
                Path.Combine(Path.GetDirectoryName(path) ?? "", BaseName + ".safetensors.index.json");
            byte[] text = Encoding.UTF8.GetBytes(
                index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
            AtomicFile.Write(indexPath, s => s.Write(text));
            Written.Add(indexPath);
        }
        string mapPath = Path.Combine(Path.GetDirectoryName(path) ?? "", QuantizationMap.FileName);
        Map.Save(mapPath); // last: a reader sees the map only once the weights are complete
        Written.Add(mapPath);
    }

    /// <summary>The files a single-file or sharded output at <paramref name="path"/> would replace.</summary>
    internal static IEnumerable<string> Targets(string path)
    {
        string folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        string baseName = Path.GetFileNameWithoutExtension(path);
        yield return Path.GetFullPath(path);
        yield return Path.Combine(folder, baseName + ".safetensors.index.json");
        yield return Path.Combine(folder, QuantizationMap.FileName);
    }

    public override void Dispose()
    {
        ClearPending();
        foreach (var (temp, _) in _shards)
        {
            try
            {
                File.Delete(temp);
            }
            catch (IOException)
            {
                // best effort: the original error matters more
            }
        }
        _shards.Clear();
    }
}

/// <summary>Quanto.NET's single-file package.</summary>
internal sealed class QntOutput : QuantizedOutput
{
    private readonly string _path;
    private readonly QntPackage _package = new();

    public QntOutput(string path, IReadOnlyDictionary<string, string> metadata)
    {
        _path = path;
        foreach (var (k, v) in metadata) _package.Metadata[k] = v;
    }

    public override void Add(string name, Tensor tensor)
    {
        _package.Add(name, tensor);
        DataBytes += ByteCount(tensor);
    }

    public override void AddWeight(string module, QuantizedWeight weight)
    {
        _package.AddWeight(module, weight);
        DataBytes += weight.ByteSize;
    }

    public override void Finish()
    {
        foreach (var (module, spec) in Map) _package.QuantizationMap.Add(module, spec);
        _package.Save(_path);
        Written.Add(_path);
    }

    public override void Dispose() => _package.Dispose();
}
