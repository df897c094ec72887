using Quanto.Kernels;
using static TorchSharp.torch;

namespace Quanto.Tensors;

/// <summary>
/// A quantized weight in optimum-quanto's canonical layout: what is saved to disk and what every kernel starts from.
/// Owns its tensors; dispose it (or the module holding it) to free them.
/// </summary>
public abstract class QuantizedWeight : IDisposable
{
    private readonly long[] _shape;
    private readonly PreparedWeightCache _prepared = new();

    /// <summary>Initialises the common description.</summary>
    /// <param name="qtype">The qtype of the stored values.</param>
    /// <param name="shape">Shape of the float weight this represents.</param>
    /// <param name="dtype">Float dtype of the dequantized weight (the scale's dtype).</param>
    /// <param name="axis">The axis that keeps one scale per index (0: output channels).</param>
    protected QuantizedWeight(QType qtype, ReadOnlySpan<long> shape, ScalarType dtype, int axis)
    {
        QType = qtype;
        _shape = shape.ToArray();
        DType = dtype;
        Axis = axis;
    }

    /// <summary>The qtype of the stored values.</summary>
    public QType QType { get; }

    /// <summary>Shape of the float weight this represents (e.g. [out, in] for Linear).</summary>
    public ReadOnlySpan<long> Shape => _shape;

    /// <summary>Float dtype of <see cref="Dequantize"/>'s result and of the scale.</summary>
    public ScalarType DType { get; }

    /// <summary>The axis with one scale per index (always 0 for weights, as in optimum-quanto).</summary>
    public int Axis { get; }

    /// <summary>The device the tensors live on.</summary>
    public abstract Device Device { get; }

    /// <summary>Exact bytes held by the tensors (data, scale, shift).</summary>
    public abstract long ByteSize { get; }

    /// <summary>Bytes the float weight of the same shape and dtype would take.</summary>
    public long FloatByteSize => NumberOfElements * ElementSize(DType);

    /// <summary>Number of weight elements represented.</summary>
    public long NumberOfElements => _shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>True once <see cref="Dispose()"/> ran.</summary>
    public bool IsDisposed { get; private set; }

    /// <summary>
    /// The form of this weight that <paramref name="backend"/> runs (its kernel layout, device copy or float copy):
    /// prepared on the first request, then kept in this weight and shared by every caller until the weight is
    /// disposed. Concurrent first requests prepare it once. Unlike <see cref="IQuantKernels.Prepare"/>, the result
    /// belongs to the weight: do not dispose it.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The weight was disposed.</exception>
    /// <exception cref="NotSupportedException">The backend cannot run this weight.</exception>
    public PreparedWeight PreparedFor(IQuantKernels backend)
    {
        ThrowIfDisposed();
        return _prepared.GetOrPrepare(this, backend);
    }

    /// <summary>Bytes the prepared forms made by <see cref="PreparedFor"/> hold besides this weight's own tensors
    /// (see <see cref="PreparedWeight.ByteSize"/>).</summary>
    public long PreparedByteSize => _prepared.Forms.Sum(form => form.ByteSize);

    /// <summary>The prepared forms made so far (Quantizer.ModelBytes tells float copies from kernel layouts).</summary>
    internal IReadOnlyList<PreparedWeight> PreparedForms => _prepared.Forms;

    /// <summary>The float copies among <see cref="PreparedByteSize"/> (<see cref="PreparedWeight.FloatCopyBytes"/>).</summary>
    public long PreparedFloatCopyBytes => _prepared.Forms.Sum(form => form.FloatCopyBytes);

    /// <summary>Disposes the prepared forms made by <see cref="PreparedFor"/>; the next request prepares again.
    /// Only call it while no thread runs this weight.</summary>
    public void ReleasePrepared() => _prepared.Clear(close: false);

    /// <summary>The float weight these values stand for, in <see cref="DType"/>, shaped <see cref="Shape"/>.</summary>
    public abstract Tensor Dequantize();

    /// <summary>A copy on <paramref name="device"/>; the values stay quantized.</summary>
    public QuantizedWeight To(Device device) => To(device, DType);

    /// <summary>A copy on <paramref name="device"/> whose scales (and float shift) are in <paramref name="dtype"/>,
    /// which becomes the dequantized dtype. The codes are not touched.</summary>
    /// <exception cref="ArgumentException">dtype is not Float32, Float16 or BFloat16.</exception>
    public abstract QuantizedWeight To(Device device, ScalarType dtype);

    /// <summary>Throws unless <paramref name="dtype"/> can hold scales.</summary>
    protected static void CheckScaleDtype(ScalarType dtype)
    {
        if (!Quantization.WeightChecks.IsSupportedFloat(dtype))
            throw new ArgumentException($"Scales are Float32, Float16 or BFloat16; got {dtype}.", nameof(dtype));
    }

    /// <summary>Frees the tensors.</summary>
    public void Dispose()
    {
        if (IsDisposed) return;
        _prepared.Clear(close: true);
        Dispose(true);
        IsDisposed = true;
        GC.SuppressFinalize(this);
    }

    /// <summary>Disposes the owned tensors.</summary>
    /// <param name="disposing">True from <see cref="Dispose()"/>.</param>
    protected abstract void Dispose(bool disposing);

    /// <summary>Throws if the weight was disposed.</summary>
    protected void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);

    /// <summary>Bytes of one element of <paramref name="dtype"/>.</summary>
    internal static long ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Int8 or ScalarType.Byte or ScalarType.Bool => 1,
        QTypes.Float8E4M3Fn or QTypes.Float8E5M2 or QTypes.Float8E4M3Fnuz => 1,
        _ => throw new NotSupportedException($"No element size known for dtype {dtype}."),
    };

    /// <summary>Bytes held by a tensor.</summary>
    protected static long BytesOf(Tensor tensor) => tensor.NumberOfElements * ElementSize(tensor.dtype);

    /// <summary>Formats a shape as [a, b].</summary>
    internal static string FormatShape(ReadOnlySpan<long> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    /// <inheritdoc />
    public override string ToString() =>
        $"{GetType().Name}({QType.QuantoName()}, shape {FormatShape(Shape)}, {DType}, {ByteSize} bytes)";
}
