using static TorchSharp.torch;

namespace Quanto.Generated;

/// <summary>
/// What a generated <c>DescribeLayers</c> writes when the model's <c>Quantize</c> runs: each quantizable layer field
/// with its slot, and each nested [Quantize] model, in declaration order. The rows are read from the fields at that
/// moment, so layers assigned in the constructor (or lists grown since) are the ones quantized.
/// </summary>
public sealed class LayerTable
{
    private readonly List<Row> _rows = [];
    private readonly string _owner;

    internal LayerTable(string owner, string prefix)
    {
        _owner = owner;
        Prefix = prefix;
    }

    /// <summary>The module path prefix of the rows ("" for the outermost model, "block." inside one).</summary>
    internal string Prefix { get; }

    /// <summary>The rows, in the order written.</summary>
    internal IReadOnlyList<Row> Rows => _rows;

    /// <summary>The lists whose items were written (cleared on DisposeQuantized).</summary>
    internal List<QuantizedLayerList> Lists { get; } = [];

    /// <summary>A layer field and its slot.</summary>
    /// <param name="slot">The field's slot (its [Quantize] settings).</param>
    /// <param name="layer">The field's current value.</param>
    /// <exception cref="InvalidOperationException">The field is null.</exception>
    public void Layer(QuantizedLayer slot, nn.Module? layer)
    {
        ArgumentNullException.ThrowIfNull(slot);
        slot.Owner = _owner;
        _rows.Add(new Row(slot.Name, slot, NotNull(layer, slot.Name), null));
    }

    /// <summary>A ModuleList field of layers and its slot (one item slot per layer).</summary>
    /// <param name="slot">The field's slot.</param>
    /// <param name="layers">The field's current value.</param>
    /// <exception cref="InvalidOperationException">The field, or one of its items, is null.</exception>
    public void Layers(QuantizedLayerList slot, IEnumerable<nn.Module>? layers)
    {
        ArgumentNullException.ThrowIfNull(slot);
        slot.Owner = _owner;
        List<nn.Module> items = NotNull(layers, slot.Name).ToList();
        IReadOnlyList<QuantizedLayer> slots = slot.Reset(items.Count);
        for (int i = 0; i < items.Count; i++)
            _rows.Add(new Row(slots[i].Name, slots[i], NotNull(items[i], slots[i].Name), null));
        Lists.Add(slot);
    }

    /// <summary>A field holding a nested [Quantize] model.</summary>
    /// <param name="name">The field name.</param>
    /// <param name="model">The field's current value.</param>
    /// <exception cref="InvalidOperationException">The field is null.</exception>
    public void Model(string name, IQuantizedModel? model)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        _rows.Add(new Row(name, null, null, NotNull(model, name)));
    }

    /// <summary>A ModuleList field of nested [Quantize] models.</summary>
    /// <param name="name">The field name.</param>
    /// <param name="models">The field's current value.</param>
    /// <exception cref="InvalidOperationException">The field, or one of its items, is null.</exception>
    public void Models(string name, IEnumerable<IQuantizedModel>? models)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        int i = 0;
        foreach (IQuantizedModel? model in NotNull(models, name))
        {
            string item = $"{name}.{i++}";
            _rows.Add(new Row(item, null, null, NotNull(model, item)));
        }
    }

    private T NotNull<T>(T? value, string name)
        where T : class =>
        value ?? throw new InvalidOperationException(
            $"'{name}' of {_owner} is null when Quantize runs: assign the layer in the constructor first.");

    /// <summary>One row: a layer and its slot, or a nested model.</summary>
    /// <param name="Name">Path segment ("fc1", "heads.0", "blocks.1").</param>
    /// <param name="Slot">The layer's slot (null for a nested model).</param>
    /// <param name="Layer">The user's layer (null for a nested model).</param>
    /// <param name="Model">The nested model (null for a layer).</param>
    internal sealed record Row(string Name, QuantizedLayer? Slot, nn.Module? Layer, IQuantizedModel? Model);
}
