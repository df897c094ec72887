using System.Collections;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// An ordered map of tensor names to tensors, plus string metadata, as read from or written to a checkpoint.
/// Owns its tensors (disposing it disposes them). Loading code takes tensors with <see cref="Take(string)"/> and
/// finally calls <see cref="ThrowIfUnconsumed"/>, so that missing keys, extra keys and shape mismatches are all
/// reported as <see cref="QuantoFormatException"/>s naming the source file.
/// </summary>
public sealed class StateDict : IDisposable, IEnumerable<KeyValuePair<string, Tensor>>
{
    private readonly HashSet<string> _taken = new(StringComparer.Ordinal);

    /// <summary>An empty state dict.</summary>
    /// <param name="source">The file it comes from (or goes to); used in error messages.</param>
    public StateDict(string source = "<memory>")
    {
        Source = source;
    }

    /// <summary>The file (or description) this state dict comes from.</summary>
    public string Source { get; }

    /// <summary>The tensors, in file order.</summary>
    public OrderedDictionary<string, Tensor> Tensors { get; } = new(StringComparer.Ordinal);

    /// <summary>Free-form string metadata (safetensors __metadata__, .qnt metadata).</summary>
    public Dictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);

    /// <summary>Number of tensors.</summary>
    public int Count => Tensors.Count;

    /// <summary>The tensor stored under <paramref name="key"/>.</summary>
    /// <exception cref="QuantoFormatException">The key is missing.</exception>
    public Tensor this[string key] => Tensors.TryGetValue(key, out Tensor? t) ? t : throw Missing(key);

    /// <summary>Adds a tensor; the state dict takes ownership.</summary>
    /// <exception cref="ArgumentException">The key is already present.</exception>
    public void Add(string key, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(tensor);
        if (!Tensors.TryAdd(key, tensor)) throw new ArgumentException($"Key '{key}' is already present.", nameof(key));
    }

    /// <summary>True when <paramref name="key"/> is present.</summary>
    public bool ContainsKey(string key) => Tensors.ContainsKey(key);

    /// <summary>Returns the tensor and marks the key as used. The state dict keeps ownership.</summary>
    /// <exception cref="QuantoFormatException">The key is missing.</exception>
    public Tensor Take(string key)
    {
        Tensor tensor = this[key];
        _taken.Add(key);
        return tensor;
    }

    /// <summary>Like <see cref="Take(string)"/>, and checks the shape (and dtype when given).</summary>
    /// <exception cref="QuantoFormatException">Missing key, or a shape or dtype other than expected; the message
    /// names the key and both shapes.</exception>
    public Tensor Take(string key, ReadOnlySpan<long> expectedShape, ScalarType? expectedDType = null)
    {
        Tensor tensor = this[key]; // marked as used only once it passes the checks
        if (!tensor.shape.AsSpan().SequenceEqual(expectedShape))
        {
            throw new QuantoFormatException(Source,
                $"shape mismatch for '{key}': the file holds {Checksums.FormatShape(tensor.shape)}, the model " +
                $"expects {Checksums.FormatShape(expectedShape.ToArray())}.");
        }
        if (expectedDType is ScalarType dtype && tensor.dtype != dtype)
        {
            throw new QuantoFormatException(Source,
                $"dtype mismatch for '{key}': the file holds {SafetensorsDType.NameOf(tensor.dtype)}, expected " +
                $"{SafetensorsDType.NameOf(dtype)}.");
        }
        _taken.Add(key);
        return tensor;
    }

    /// <summary>Keys not yet taken, in file order.</summary>
    public IReadOnlyList<string> Unconsumed => Tensors.Keys.Where(k => !_taken.Contains(k)).ToArray();

    /// <summary>Reports keys the loading code did not use (extra keys), instead of silently dropping them.</summary>
    /// <exception cref="QuantoFormatException">Some keys were not taken; the message lists them.</exception>
    public void ThrowIfUnconsumed()
    {
        IReadOnlyList<string> extra = Unconsumed;
        if (extra.Count == 0) return;
        throw new QuantoFormatException(Source,
            $"{extra.Count} unexpected key(s) not used by the model: " +
            $"{string.Join(", ", extra.Select(k => $"'{k}'"))}.");
    }

    /// <summary>The error for a missing key, naming the file and the key.</summary>
    public QuantoFormatException Missing(string key) =>
        new(Source, $"missing key '{key}' ({Count} keys present).");

    /// <summary>Disposes every tensor.</summary>
    public void Dispose()
    {
        foreach (Tensor tensor in Tensors.Values) tensor.Dispose();
        Tensors.Clear();
    }

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, Tensor>> GetEnumerator() => Tensors.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
