using System.Collections;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>Tensors a state dict reads on demand (the open files of a checkpoint).</summary>
internal interface ITensorSource : IDisposable
{
    /// <summary>The keys, in file order.</summary>
    IEnumerable<string> Keys { get; }

    /// <summary>Number of tensors.</summary>
    int Count { get; }

    /// <summary>True when the key is present.</summary>
    bool Contains(string key);

    /// <summary>The dtype and shape of a key, from the header alone; null when absent.</summary>
    (ScalarType DType, IReadOnlyList<long> Shape)? Describe(string key);

    /// <summary>Reads one tensor (a new tensor the caller owns).</summary>
    Tensor Read(string key);
}

/// <summary>
/// An ordered map of tensor names to tensors, plus string metadata, as read from or written to a checkpoint.
/// Owns its tensors (disposing it disposes them). Loading code takes tensors with <see cref="Take(string)"/> and
/// finally calls <see cref="ThrowIfUnconsumed"/>, so that missing keys, extra keys and shape mismatches are all
/// reported as <see cref="QuantoFormatException"/>s naming the source file. A state dict opened on a checkpoint
/// (<see cref="QuantizedCheckpoint"/>) knows every key, dtype and shape from the headers and reads a tensor's data
/// only when it is taken, so a file that does not fit the model is rejected before its data is read.
/// </summary>
public sealed class StateDict : IDisposable, IEnumerable<KeyValuePair<string, Tensor>>
{
    private readonly HashSet<string> _taken = new(StringComparer.Ordinal);
    private OrderedDictionary<string, Tensor> _tensors = new(StringComparer.Ordinal);
    private ITensorSource? _source; // tensors not read yet; _tensors then holds the ones read so far, in any order

    /// <summary>An empty state dict.</summary>
    /// <param name="source">The file it comes from (or goes to); used in error messages.</param>
    public StateDict(string source = "<memory>")
    {
        Source = source;
    }

    /// <summary>A state dict that reads its tensors from <paramref name="tensors"/> on demand; it takes it.</summary>
    internal StateDict(string source, ITensorSource tensors, IReadOnlyDictionary<string, string> metadata)
        : this(source)
    {
        _source = tensors;
        foreach (var (k, v) in metadata) Metadata[k] = v;
    }

    /// <summary>The file (or description) this state dict comes from.</summary>
    public string Source { get; }

    /// <summary>The tensors, in file order (reading any not read yet).</summary>
    public OrderedDictionary<string, Tensor> Tensors
    {
        get
        {
            ReadAll();
            return _tensors;
        }
    }

    /// <summary>Free-form string metadata (safetensors __metadata__, .qnt metadata).</summary>
    public Dictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);

    /// <summary>Number of tensors.</summary>
    public int Count => _source?.Count ?? _tensors.Count;

    /// <summary>The keys, in file order (nothing is read).</summary>
    public IEnumerable<string> Keys => _source?.Keys ?? _tensors.Keys;

    /// <summary>The tensor stored under <paramref name="key"/>.</summary>
    /// <exception cref="QuantoFormatException">The key is missing, or its data fails to read.</exception>
    public Tensor this[string key] => Get(key) ?? throw Missing(key);

    /// <summary>Adds a tensor; the state dict takes ownership.</summary>
    /// <exception cref="ArgumentException">The key is already present.</exception>
    public void Add(string key, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(tensor);
        ReadAll();
        if (!_tensors.TryAdd(key, tensor)) throw new ArgumentException($"Key '{key}' is already present.", nameof(key));
    }

    /// <summary>True when <paramref name="key"/> is present.</summary>
    public bool ContainsKey(string key) => _source?.Contains(key) ?? _tensors.ContainsKey(key);

    /// <summary>The shape of a key without reading its data; null when absent.</summary>
    public IReadOnlyList<long>? ShapeOf(string key) => _source is not null
        ? _source.Describe(key)?.Shape
        : _tensors.TryGetValue(key, out Tensor? t) ? t.shape : null;

    /// <summary>The dtype of a key without reading its data; null when absent.</summary>
    public ScalarType? DTypeOf(string key) => _source is not null
        ? _source.Describe(key)?.DType
        : _tensors.TryGetValue(key, out Tensor? t) ? t.dtype : null;

    /// <summary>Returns the tensor and marks the key as used. The state dict keeps ownership.</summary>
    /// <exception cref="QuantoFormatException">The key is missing.</exception>
    public Tensor Take(string key)
    {
        Tensor tensor = this[key];
        _taken.Add(key);
        return tensor;
    }

    /// <summary>Like <see cref="Take(string)"/>, and checks the shape (and dtype when given) before reading.</summary>
    /// <exception cref="QuantoFormatException">Missing key, or a shape or dtype other than expected; the message
    /// names the key and both shapes.</exception>
    public Tensor Take(string key, ReadOnlySpan<long> expectedShape, ScalarType? expectedDType = null)
    {
        // Marked as used only once it passes the checks, which need the header alone.
        IReadOnlyList<long> shape = ShapeOf(key) ?? throw Missing(key);
        if (!shape.SequenceEqual(expectedShape.ToArray()))
        {
            throw new QuantoFormatException(Source,
                $"shape mismatch for '{key}': the file holds {Checksums.FormatShape(shape)}, the model " +
                $"expects {Checksums.FormatShape(expectedShape.ToArray())}.");
        }
        ScalarType actual = DTypeOf(key)!.Value;
        if (expectedDType is ScalarType dtype && actual != dtype)
        {
            throw new QuantoFormatException(Source,
                $"dtype mismatch for '{key}': the file holds {SafetensorsDType.NameOf(actual)}, expected " +
                $"{SafetensorsDType.NameOf(dtype)}.");
        }
        Tensor tensor = this[key];
        _taken.Add(key);
        return tensor;
    }

    /// <summary>Keys not yet taken, in file order.</summary>
    public IReadOnlyList<string> Unconsumed => Keys.Where(k => !_taken.Contains(k)).ToArray();

    /// <summary>Reports keys the loading code did not use (extra keys), instead of silently dropping them.</summary>
    /// <exception cref="QuantoFormatException">Some keys were not taken; the message lists them.</exception>
    public void ThrowIfUnconsumed()
    {
        IReadOnlyList<string> extra = Unconsumed;
        if (extra.Count == 0) return;
        const int Listed = 20; // a hostile file can have 10^6 of them
        string list = string.Join(", ", extra.Take(Listed).Select(k => $"'{k}'")) +
            (extra.Count > Listed ? $", ... ({extra.Count - Listed} more)" : "");
        throw new QuantoFormatException(Source, $"{extra.Count} unexpected key(s) not used by the model: {list}.");
    }

    /// <summary>The error for a missing key, naming the file and the key.</summary>
    public QuantoFormatException Missing(string key) =>
        new(Source, $"missing key '{key}' ({Count} keys present).");

    /// <summary>Reads every tensor not read yet, in file order, and closes the files.</summary>
    internal void ReadAll()
    {
        if (_source is null) return;
        var ordered = new OrderedDictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (string key in _source.Keys)
                ordered.Add(key, _tensors.Remove(key, out Tensor? read) ? read : _source.Read(key));
        }
        catch
        {
            foreach (var (k, t) in ordered) _tensors.TryAdd(k, t); // still owned: disposed with the state dict
            throw;
        }
        _source.Dispose();
        _source = null;
        _tensors = ordered;
    }

    private Tensor? Get(string key)
    {
        if (_tensors.TryGetValue(key, out Tensor? tensor)) return tensor;
        if (_source is null || !_source.Contains(key)) return null;
        tensor = _source.Read(key);
        _tensors.Add(key, tensor);
        return tensor;
    }

    /// <summary>Disposes every tensor read, and closes the files.</summary>
    public void Dispose()
    {
        foreach (Tensor tensor in _tensors.Values) tensor.Dispose();
        _tensors.Clear();
        _source?.Dispose();
        _source = null;
    }

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, Tensor>> GetEnumerator() => Tensors.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
