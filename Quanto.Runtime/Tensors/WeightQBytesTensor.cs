using static TorchSharp.torch;

namespace Quanto.Tensors;

/// <summary>
/// An 8-bit weight (qint8 or float8), symmetric per output channel: weight ≈ data * scale, with data shaped like the
/// weight and scale shaped (out, 1, ...) in the weight's dtype. optimum-quanto keys: <c>weight._data</c>,
/// <c>weight._scale</c>.
/// </summary>
public sealed class WeightQBytesTensor : QuantizedWeight
{
    /// <summary>Wraps quantized data and its scale; takes ownership of both tensors.</summary>
    /// <param name="qtype">qint8 or a float8 qtype.</param>
    /// <param name="data">Codes: int8 for qint8, the float8 dtype for float8 qtypes; shaped like the weight.</param>
    /// <param name="scale">Per-channel scale, (shape[0], 1, ...), float dtype.</param>
    /// <param name="axis">Axis of the scale (0).</param>
    /// <exception cref="ArgumentException">The dtypes or shapes disagree with the qtype.</exception>
    public WeightQBytesTensor(QType qtype, Tensor data, Tensor scale, int axis = 0)
        : base(qtype, data.shape, scale.dtype, axis)
    {
        QTypeInfo info = qtype.Info();
        if (info.Bits != 8)
            throw new ArgumentException($"WeightQBytesTensor holds 8-bit qtypes; got {info.Name}.", nameof(qtype));
        if (data.dtype != info.Storage)
        {
            throw new ArgumentException(
                $"{info.Name} data must be stored as {info.Storage}; got {data.dtype}.", nameof(data));
        }
        if (scale.dim() != data.dim() || scale.shape[axis] != data.shape[axis] || scale.NumberOfElements != data.shape[axis])
        {
            throw new ArgumentException(
                $"Scale shape {FormatShape(scale.shape)} does not match data shape {FormatShape(data.shape)} " +
                $"along axis {axis} (expected one scale per index, other dimensions 1).", nameof(scale));
        }
        // The weight owns its tensors: a caller's dispose scope must not free them.
        Data = data.DetachFromDisposeScope();
        Scale = scale.DetachFromDisposeScope();
    }

    /// <summary>The codes (int8, or float8 stored in its libtorch dtype).</summary>
    public Tensor Data { get; }

    /// <summary>The per-channel scale.</summary>
    public Tensor Scale { get; }

    /// <inheritdoc />
    public override Device Device => Data.device;

    /// <inheritdoc />
    public override long ByteSize => BytesOf(Data) + BytesOf(Scale);

    /// <inheritdoc />
    public override Tensor Dequantize()
    {
        ThrowIfDisposed();
        Tensor result = empty(Data.shape, DType, Device);
        if (Axis != 0) return result.copy_(Data).mul_(Scale);
        // Block by block along the scale's axis (see RowBlocks): convert and scale in place, no temporaries.
        Quantization.RowBlocks.ForEach(Data.shape[0], Data.NumberOfElements / Math.Max(1, Data.shape[0]), (start, count) =>
            result.narrow(0, start, count).copy_(Data.narrow(0, start, count)).mul_(Scale.narrow(0, start, count)));
        return result;
    }

    /// <inheritdoc />
    public override QuantizedWeight To(Device device, ScalarType dtype)
    {
        ThrowIfDisposed();
        CheckScaleDtype(dtype);
        return new WeightQBytesTensor(QType, Data.to(device), Scale.to(dtype, device), Axis);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        Data.Dispose();
        Scale.Dispose();
    }
}
