using Quanto.Quantization;
using static TorchSharp.torch;

namespace Quanto.Tensors;

/// <summary>
/// A 2- or 4-bit weight, group-wise affine along the input features of each output row, codes packed in
/// optimum-quanto's PackedTensor layout. The weight viewed as (numel / g, g) rows of one group each satisfies
/// w ≈ q * scale - shift (float shift) or (q - zeropoint) * scale (uint8 zero-point). optimum-quanto keys:
/// <c>weight._data._data</c> (packed), <c>weight._scale</c>, <c>weight._shift</c>.
/// </summary>
public sealed class WeightQBitsTensor : QuantizedWeight
{
    /// <summary>Wraps packed codes, scale and shift; takes ownership of the tensors.</summary>
    /// <param name="qtype">qint2 or qint4.</param>
    /// <param name="shape">Shape of the float weight.</param>
    /// <param name="groupSize">Elements per group (the row length when quantized per channel).</param>
    /// <param name="packed">Packed codes, uint8, (PackedRows(numel / g), g).</param>
    /// <param name="scale">Scale per group, (numel / g, 1), float dtype.</param>
    /// <param name="shift">Float shift (scale's dtype) or uint8 zero-point, (numel / g, 1).</param>
    /// <exception cref="ArgumentException">The shapes or dtypes disagree with each other.</exception>
    public WeightQBitsTensor(QType qtype, ReadOnlySpan<long> shape, int groupSize, Tensor packed, Tensor scale, Tensor shift)
        : base(qtype, shape, scale.dtype, 0)
    {
        QTypeInfo info = qtype.Info();
        if (!info.IsPacked)
            throw new ArgumentException($"WeightQBitsTensor holds 2- and 4-bit qtypes; got {info.Name}.", nameof(qtype));
        long numel = NumberOfElements;
        if (groupSize <= 0 || numel % groupSize != 0)
        {
            throw new ArgumentException(
                $"Group size {groupSize} does not divide the {numel} elements of shape {FormatShape(shape)}.",
                nameof(groupSize));
        }
        long groups = numel / groupSize;
        long packedRows = Packing.PackedRows(checked((int)groups), info.Bits);
        if (packed.dtype != ScalarType.Byte || packed.dim() != 2 || packed.shape[0] != packedRows || packed.shape[1] != groupSize)
        {
            throw new ArgumentException(
                $"Packed codes must be uint8 [{packedRows}, {groupSize}] for {groups} groups of {groupSize} " +
                $"{info.Name} codes; got {packed.dtype} {FormatShape(packed.shape)}.", nameof(packed));
        }
        CheckPerGroup(scale, groups, nameof(scale));
        CheckPerGroup(shift, groups, nameof(shift));
        if (shift.dtype != ScalarType.Byte && shift.dtype != scale.dtype)
        {
            throw new ArgumentException(
                $"Shift must be a uint8 zero-point or a float in the scale's dtype {scale.dtype}; got {shift.dtype}.",
                nameof(shift));
        }
        GroupSize = groupSize;
        // The weight owns its tensors: a caller's dispose scope must not free them.
        Packed = packed.DetachFromDisposeScope();
        Scale = scale.DetachFromDisposeScope();
        Shift = shift.DetachFromDisposeScope();
    }

    /// <summary>Elements per group.</summary>
    public int GroupSize { get; }

    /// <summary>Number of groups (rows of the grouped view).</summary>
    public long Groups => NumberOfElements / GroupSize;

    /// <summary>True when one group spans a whole output row (no grouping beyond per channel).</summary>
    public bool IsPerChannel => GroupSize * Shape[0] == NumberOfElements;

    /// <summary>True when <see cref="Shift"/> is a uint8 zero-point rather than a float shift.</summary>
    public bool HasZeroPoint => Shift.dtype == ScalarType.Byte;

    /// <summary>Packed codes (uint8).</summary>
    public Tensor Packed { get; }

    /// <summary>Scale per group, (groups, 1).</summary>
    public Tensor Scale { get; }

    /// <summary>Shift per group, (groups, 1): float (w = q*scale - shift) or uint8 zero-point.</summary>
    public Tensor Shift { get; }

    /// <inheritdoc />
    public override Device Device => Packed.device;

    /// <inheritdoc />
    public override long ByteSize => BytesOf(Packed) + BytesOf(Scale) + BytesOf(Shift);

    /// <summary>The unpacked codes, uint8, (groups, group size), on the CPU.</summary>
    public Tensor UnpackCodes()
    {
        ThrowIfDisposed();
        int rows = checked((int)Groups);
        Tensor codes = empty([rows, GroupSize], ScalarType.Byte);
        using Tensor packedCpu = Packed.cpu().contiguous();
        Packing.Unpack(packedCpu.bytes, rows, GroupSize, QType.Bits(), codes.bytes);
        return codes;
    }

    /// <inheritdoc />
    public override Tensor Dequantize()
    {
        ThrowIfDisposed();
        int rows = checked((int)Groups);
        int bits = QType.Bits();
        Tensor result = empty([rows, GroupSize], DType, Device);
        using Tensor packedCpu = Packed.cpu().contiguous();
        // Block by block (see RowBlocks): unpack into a small uint8 tensor, then convert and scale in place.
        Quantization.RowBlocks.ForEach(rows, GroupSize, (start, count) =>
        {
            Tensor codes = empty([count, GroupSize], ScalarType.Byte);
            Packing.UnpackRows(packedCpu.bytes, rows, GroupSize, bits, (int)start, (int)count, codes.bytes);
            Tensor block = result.narrow(0, start, count);
            block.copy_(codes);
            Tensor scale = Scale.narrow(0, start, count), shift = Shift.narrow(0, start, count);
            if (HasZeroPoint) block.sub_(shift.to(DType)).mul_(scale);
            else block.mul_(scale).sub_(shift);
        });
        using (result)
        {
            return result.reshape(Shape.ToArray());
        }
    }

    /// <inheritdoc />
    public override QuantizedWeight To(Device device, ScalarType dtype)
    {
        ThrowIfDisposed();
        CheckScaleDtype(dtype);
        Tensor shift = HasZeroPoint ? Shift.to(device) : Shift.to(dtype, device);
        return new WeightQBitsTensor(QType, Shape, GroupSize, Packed.to(device), Scale.to(dtype, device), shift);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        Packed.Dispose();
        Scale.Dispose();
        Shift.Dispose();
    }

    private static void CheckPerGroup(Tensor t, long groups, string name)
    {
        if (t.dim() != 2 || t.shape[0] != groups || t.shape[1] != 1)
            throw new ArgumentException($"{name} must be [{groups}, 1] (one per group); got {FormatShape(t.shape)}.", name);
    }
}
