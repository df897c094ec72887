namespace Quanto.Generated;

/// <summary>
/// The layers of a ModuleList field of a [Quantize] model, which share its [Quantize] settings: one
/// <see cref="QuantizedLayer"/> per item ("heads.0", "heads.1", ...), made when the model's <c>Quantize</c> runs (the
/// list may have grown since construction). Generated <c>ForwardQuantized</c> writes <c>heads[i]</c> as
/// <c>_headsQuantized[i]</c>.
/// </summary>
public sealed class QuantizedLayerList
{
    private QuantizedLayer[] _items = [];

    /// <summary>A list slot with its [Quantize] settings.</summary>
    /// <param name="name">The field name ("heads").</param>
    /// <param name="weights">Weight qtype, or null.</param>
    /// <param name="activations">Activation qtype, or null.</param>
    /// <param name="groupSize">Group size of 2/4-bit weights, or null for the default.</param>
    public QuantizedLayerList(string name, QType? weights = null, QType? activations = null, int? groupSize = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
        Weights = weights;
        Activations = activations;
        GroupSize = groupSize;
    }

    /// <summary>The field name.</summary>
    public string Name { get; }

    /// <summary>The [Quantize] weight qtype.</summary>
    public QType? Weights { get; }

    /// <summary>The [Quantize] activation qtype.</summary>
    public QType? Activations { get; }

    /// <summary>The [Quantize] group size.</summary>
    public int? GroupSize { get; }

    /// <summary>Number of items (0 until quantized).</summary>
    public int Count => _items.Length;

    /// <summary>The slot of item <paramref name="index"/>.</summary>
    /// <exception cref="InvalidOperationException">The model is not quantized.</exception>
    /// <exception cref="IndexOutOfRangeException">No such item.</exception>
    public QuantizedLayer this[int index]
    {
        get
        {
            if (_items.Length == 0)
            {
                throw new InvalidOperationException(
                    $"'{Name}' of {Owner} is not quantized: call Quantize() (or LoadQuantized(path)) on the model " +
                    "first; DisposeQuantized() releases the quantized layers.");
            }
            return _items[index];
        }
    }

    /// <summary>The model that owns this list, for messages.</summary>
    internal string Owner { get; set; } = "";

    /// <summary>Makes one slot per item of the user's list.</summary>
    internal IReadOnlyList<QuantizedLayer> Reset(int count)
    {
        _items = Enumerable.Range(0, count)
            .Select(i => new QuantizedLayer($"{Name}.{i}", Weights, Activations, GroupSize) { Owner = Owner })
            .ToArray();
        return _items;
    }

    /// <summary>Forgets the items (their slots are released by the model).</summary>
    internal void Clear() => _items = [];
}
