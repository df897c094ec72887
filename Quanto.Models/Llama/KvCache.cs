using static TorchSharp.torch;

namespace Quanto.Models.Llama;

/// <summary>
/// The key/value cache of a decoder: per layer, keys and values (batch, kv_heads, capacity, head_dim) in preallocated
/// buffers that grow by doubling, so decoding one token appends in place instead of concatenating. Owns its tensors.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Layer[] _layers;

    /// <summary>An empty cache for <paramref name="config"/>.</summary>
    /// <param name="config">The model's architecture.</param>
    /// <param name="capacity">Positions to preallocate (grows when exceeded).</param>
    public KvCache(LlamaConfig config, long capacity = 256)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        _layers = new Layer[config.NumHiddenLayers];
        for (int i = 0; i < _layers.Length; i++) _layers[i] = new Layer(capacity);
    }

    /// <summary>Positions cached so far (the next token's position).</summary>
    public long Length => _layers[0].Length;

    /// <summary>
    /// Appends layer <paramref name="layer"/>'s new keys and values (batch, kv_heads, new, head_dim) and returns
    /// views of everything cached for it (batch, kv_heads, length, head_dim).
    /// </summary>
    internal (Tensor Keys, Tensor Values) Append(int layer, Tensor keys, Tensor values) =>
        _layers[layer].Append(keys, values);

    /// <summary>Forgets everything (keeps the buffers).</summary>
    public void Clear()
    {
        foreach (Layer layer in _layers) layer.Length = 0;
    }

    /// <summary>Frees the buffers.</summary>
    public void Dispose()
    {
        foreach (Layer layer in _layers) layer.Dispose();
    }

    private sealed class Layer(long capacity) : IDisposable
    {
        private Tensor? _keys, _values;
        private long _capacity = capacity;

        public long Length { get; set; }

        public (Tensor Keys, Tensor Values) Append(Tensor keys, Tensor values)
        {
            long added = keys.shape[2];
            if (Length > 0 && (_keys!.shape[0] != keys.shape[0] || _keys.dtype != keys.dtype))
            {
                throw new InvalidOperationException(
                    $"The cache holds batch {_keys.shape[0]} in {_keys.dtype}; got batch {keys.shape[0]} in " +
                    $"{keys.dtype}. Clear it (or use a new one) for another batch.");
            }
            if (_keys is null || _values is null || Length + added > _capacity ||
                _keys.shape[0] != keys.shape[0] || _keys.dtype != keys.dtype)
            {
                Grow(keys, values, Length + added);
            }
            using (no_grad())
            {
                _keys!.narrow(2, Length, added).copy_(keys);
                _values!.narrow(2, Length, added).copy_(values);
            }
            Length += added;
            return (_keys.narrow(2, 0, Length), _values!.narrow(2, 0, Length));
        }

        private void Grow(Tensor keys, Tensor values, long needed)
        {
            while (_capacity < needed) _capacity *= 2;
            Tensor newKeys = Buffer(keys), newValues = Buffer(values);
            if (_keys is not null && _values is not null && Length > 0)
            {
                newKeys.narrow(2, 0, Length).copy_(_keys.narrow(2, 0, Length));
                newValues.narrow(2, 0, Length).copy_(_values.narrow(2, 0, Length));
            }
            Dispose();
            _keys = newKeys;
            _values = newValues;
        }

        private Tensor Buffer(Tensor like) =>
            empty([like.shape[0], like.shape[1], _capacity, like.shape[3]], dtype: like.dtype, device: like.device)
                .DetachFromDisposeScope();

        public void Dispose()
        {
            _keys?.Dispose();
            _values?.Dispose();
            _keys = _values = null;
        }
    }
}
