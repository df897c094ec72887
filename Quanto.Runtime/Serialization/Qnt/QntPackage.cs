using System.Buffers;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// Quanto.NET's single-file package (<c>.qnt</c>, MessagePack): magic, format version, the quantization map,
/// metadata, and every tensor with its name, dtype, shape, qtype, axis, group size, raw bytes and an XxHash64
/// checksum. Self-describing: a quantized weight is rebuilt from the package alone. Owns its tensors.
/// </summary>
public sealed class QntPackage : IDisposable
{
    /// <summary>The format version this library writes.</summary>
    public static Version CurrentVersion { get; } = new(QntFormat.Major, QntFormat.Minor);

    /// <summary>The conventional file extension.</summary>
    public const string Extension = ".qnt";

    /// <summary>The format version (as read, or <see cref="CurrentVersion"/> for a new package).</summary>
    public Version FormatVersion { get; internal set; } = CurrentVersion;

    /// <summary>Module path -> weight and activation qtypes.</summary>
    public QuantizationMap QuantizationMap { get; } = new();

    /// <summary>Free-form string metadata.</summary>
    public Dictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);

    /// <summary>The tensors by name, in order.</summary>
    public OrderedDictionary<string, QntTensor> Tensors { get; } = new(StringComparer.Ordinal);

    /// <summary>Adds a tensor entry; the package takes ownership of its tensor.</summary>
    /// <exception cref="ArgumentException">The name is already present.</exception>
    public void Add(QntTensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (!Tensors.TryAdd(tensor.Name, tensor))
            throw new ArgumentException($"Tensor '{tensor.Name}' is already present.", nameof(tensor));
    }

    /// <summary>Adds a plain (float) tensor such as a bias, an activation scale or a not-yet-frozen weight.</summary>
    public void Add(string name, Tensor tensor) => Add(new QntTensor(name, tensor));

    /// <summary>
    /// Adds a quantized weight's tensors under <paramref name="modulePath"/> in optimum-quanto's key layout (see
    /// <see cref="QuantizedWeightState"/>), each tagged with qtype, axis, group size and weight shape. The package
    /// holds views on the weight's memory; the weight keeps its own handles. Any group size is allowed.
    /// </summary>
    public void AddWeight(string modulePath, QuantizedWeight weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        int? group = weight is WeightQBitsTensor bits ? bits.GroupSize : null;
        var parts = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        QuantizedWeightState.AddTensors(weight, modulePath, parts);
        long[] shape = weight.Shape.ToArray();
        foreach (var (name, tensor) in parts) Add(new QntTensor(name, tensor, weight.QType, weight.Axis, group, shape));
    }

    /// <summary>Rebuilds the quantized weight of a module from its tagged tensors.</summary>
    /// <exception cref="QuantoFormatException">The tensors are missing, untagged or inconsistent.</exception>
    public QuantizedWeight ReadWeight(string modulePath, string source = "<package>")
    {
        string[] candidates =
            [QuantoKeys.Join(modulePath, QuantoKeys.PackedData), QuantoKeys.Join(modulePath, QuantoKeys.Data)];
        QntTensor? head = candidates.Select(k => Tensors.GetValueOrDefault(k)).FirstOrDefault(t => t is not null);
        if (head?.QType is not QType qtype || head.WeightShape is not { Count: >= 2 } shape)
            throw new QuantoFormatException(source, $"module '{modulePath}': no tagged quantized weight tensors.");
        if (qtype.Info().IsPacked && head.GroupSize is null)
            throw new QuantoFormatException(source,
                $"module '{modulePath}': {qtype.QuantoName()} weight lacks its group size.");
        using var parts = new StateDict(source);
        foreach (string key in QuantoKeys.WeightKeys(modulePath, qtype))
        {
            if (Tensors.TryGetValue(key, out QntTensor? part)) parts.Add(key, part.Tensor.alias());
        }
        return QuantizedWeightState.ReadExact(parts, modulePath, qtype, shape.ToArray(), head.GroupSize ?? 0);
    }

    /// <summary>A state dict of views on the package's tensors (optimum-quanto keys), with the metadata.</summary>
    public StateDict ToStateDict(string source = "<package>")
    {
        var dict = new StateDict(source);
        foreach (var (name, item) in Tensors) dict.Add(name, item.Tensor.alias());
        foreach (var (k, v) in Metadata) dict.Metadata[k] = v;
        return dict;
    }

    /// <summary>Saves atomically: the old file stays intact if anything fails.</summary>
    public void Save(string path) => AtomicFile.Write(path, Write);

    /// <summary>Writes the package to a stream (not atomic).</summary>
    public void Write(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        QntWriter.Write(stream, this);
    }

    /// <summary>Loads a package: the file is memory-mapped; tensor bytes are copied once, into the tensors.</summary>
    /// <exception cref="QuantoFormatException">Malformed, from a newer major version, or corrupted.</exception>
    public static QntPackage Load(string path) => Load(path, MappedSequence.SegmentBytes);

    /// <summary>Loads with a given map segment size; tests lower it to cross segment boundaries.</summary>
    internal static QntPackage Load(string path, int segmentBytes)
    {
        long length = new FileInfo(path).Length; // throws FileNotFoundException for a missing file
        if (length == 0) throw new QuantoFormatException(path, "truncated: the file is empty.");
        using var mapped = new MappedSequence(path, length, segmentBytes);
        return QntReader.Read(mapped.Sequence, path);
    }

    /// <summary>Reads a package from memory.</summary>
    public static QntPackage Read(ReadOnlyMemory<byte> bytes, string source = "<memory>") =>
        QntReader.Read(new ReadOnlySequence<byte>(bytes), source);

    /// <summary>Disposes every tensor.</summary>
    public void Dispose()
    {
        foreach (QntTensor item in Tensors.Values) item.Tensor.Dispose();
        Tensors.Clear();
    }
}
