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

    /// <summary>
    /// Layer <paramref name="layer"/>'s whole buffers (batch, kv_heads, capacity, head_dim), grown (or made) so that
    /// <paramref name="added"/> positions fit after <see cref="LayerLength"/>: for a caller that writes the new keys
    /// and values in place, then calls <see cref="Advance"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The cache holds another batch size or dtype.</exception>
    internal (Tensor Keys, Tensor Values) Reserve(int layer, long batch, long kvHeads, long headDim, long added,
        ScalarType dtype, Device device) =>
        _layers[layer].Reserve(batch, kvHeads, headDim, added, dtype, device);

    /// <summary>Positions layer <paramref name="layer"/> holds.</summary>
    internal long LayerLength(int layer) => _layers[layer].Length;

    /// <summary>Counts <paramref name="added"/> positions written in place after <see cref="Reserve"/>.</summary>
    internal void Advance(int layer, long added) => _layers[layer].Length += added;

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
            long added = keys.size(2);
            (Tensor allKeys, Tensor allValues) = Reserve(keys.size(0), keys.size(1), keys.size(3), added, keys.dtype,
                keys.device);
            using (no_grad())
            {
                allKeys.narrow(2, Length, added).copy_(keys);
                allValues.narrow(2, Length, added).copy_(values);
            }
            Length += added;
            return (allKeys.narrow(2, 0, Length), allValues.narrow(2, 0, Length));
        }

        /// <summary>The whole buffers (batch, kv_heads, capacity, head_dim), with room for <paramref name="added"/>
        /// positions after <see cref="Length"/>; Length is unchanged (the caller writes them, then adds).</summary>
        public (Tensor Keys, Tensor Values) Reserve(long batch, long kvHeads, long headDim, long added,
            ScalarType dtype, Device device)
        {
            if (Length > 0 && (_keys!.size(0) != batch || _keys.dtype != dtype))
            {
                throw new InvalidOperationException(
                    $"The cache holds batch {_keys.shape[0]} in {_keys.dtype}; got batch {batch} in " +
                    $"{dtype}. Clear it (or use a new one) for another batch.");
            }
            if (_keys is null || _values is null || Length + added > _capacity ||
                _keys.size(0) != batch || _keys.dtype != dtype)
            {
                Grow([batch, kvHeads, 0, headDim], dtype, device, Length + added);
            }
            return (_keys!, _values!);
        }

        private void Grow(long[] shape, ScalarType dtype, Device device, long needed)
        {
            while (_capacity < needed) _capacity *= 2;
            shape[2] = _capacity;
            Tensor newKeys = Buffer(shape, dtype, device), newValues = Buffer(shape, dtype, device);
            if (_keys is not null && _values is not null && Length > 0)
            {
                newKeys.narrow(2, 0, Length).copy_(_keys.narrow(2, 0, Length));
                newValues.narrow(2, 0, Length).copy_(_values.narrow(2, 0, Length));
            }
            Dispose();
            _keys = newKeys;
            _values = newValues;
        }

        private static Tensor Buffer(long[] shape, ScalarType dtype, Device device) =>
            empty(shape, dtype: dtype, device: device).DetachFromDisposeScope();

        public void Dispose()
        {
            _keys?.Dispose();
            _values?.Dispose();
            _keys = _values = null;
        }
    }
}
