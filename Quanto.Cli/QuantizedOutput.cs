using System.Text;
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

/// <summary>
/// optimum-quanto layout: {base}.safetensors (or shards + index) and the map named after it, written as one
/// crash-safe set (the runtime's FileSetWriter and ShardedWriter): a kill leaves the previous output or this one.
/// </summary>
internal sealed class SafetensorsOutput : QuantizedOutput
{
    private readonly FileSetWriter _save;
    private readonly ShardedWriter _writer;
    private readonly string _mapFile;

    public SafetensorsOutput(string path, long maxShardBytes, IReadOnlyDictionary<string, string> metadata)
    {
        string baseName = CheckpointFiles.BaseNameOf(path);
        _mapFile = CheckpointFiles.MapFileFor(baseName);
        _save = FileSetWriter.Begin(Path.GetDirectoryName(Path.GetFullPath(path))!, severalFiles: true);
        try
        {
            CheckpointFiles.RefuseForeignMap(_save.Folder, baseName);
            _writer = new ShardedWriter(_save, baseName, maxShardBytes, metadata, ownsTensors: true);
        }
        catch
        {
            _save.Dispose();
            throw;
        }
    }

    public override void Add(string name, Tensor tensor)
    {
        _writer.Add(name, tensor);
        DataBytes = _writer.DataBytes;
    }

    public override void AddWeight(string module, QuantizedWeight weight)
    {
        var parts = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        QuantizedWeightState.Write(weight, module, parts);
        _writer.Add(parts.ToList()); // a weight's parts stay in one shard
        DataBytes = _writer.DataBytes;
    }

    public override void Finish()
    {
        List<string> names = _writer.Finish(_mapFile, CheckpointFiles.MapChecksum(Map));
        byte[] map = Encoding.UTF8.GetBytes(Map.ToJson());
        _save.Write(_mapFile, s => s.Write(map)); // the record in the weights names this map and its checksum
        _save.Commit();
        Written.AddRange(names.Append(_mapFile).Select(n => Path.Combine(_save.Folder, n)));
    }

    /// <summary>The files a single-file or sharded output at <paramref name="path"/> would replace.</summary>
    internal static IEnumerable<string> Targets(string path)
    {
        string folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        string baseName = CheckpointFiles.BaseNameOf(path);
        yield return Path.GetFullPath(path);
        yield return Path.Combine(folder, CheckpointFiles.IndexFileFor(baseName));
        yield return Path.Combine(folder, CheckpointFiles.MapFileFor(baseName));
    }

    public override void Dispose()
    {
        _writer.Dispose();
        _save.Dispose(); // removes what an unfinished output wrote
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
