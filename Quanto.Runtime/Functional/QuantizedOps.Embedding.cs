using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Functional;

public static partial class QuantizedOps
{
    /// <summary>
    /// Looks rows up in a quantized (rows, dim) table: out[..., :] = dequant(W)[indices[...], :], in the table's
    /// float dtype, on its device. Only the gathered rows are decoded: 8-bit codes and scales are gathered by row;
    /// 2/4-bit tables gather the packed bytes of each row's groups (a group's packed row and bit plane follow from
    /// its index in optimum-quanto's layout) and unpack those alone. The values equal
    /// <c>weight.Dequantize()[indices]</c> bit for bit.
    /// </summary>
    /// <param name="indices">Int64 or Int32 indices of any shape, each in [0, rows).</param>
    /// <param name="weight">The quantized table, rows first.</param>
    /// <returns>(indices.shape..., dim).</returns>
    /// <exception cref="ArgumentException">Indices of another dtype, or an index outside the table (checked before
    /// any lookup: libtorch may abort on a bad index).</exception>
    public static Tensor embedding(Tensor indices, QuantizedWeight weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        CheckIndices(indices, weight.Shape[0], "embedding");
        return EmbeddingRows(indices, weight);
    }

    /// <summary>Throws unless <paramref name="indices"/> are Int64/Int32 values in [0, rows); the message starts
    /// with <paramref name="owner"/> (the module that looks them up).</summary>
    internal static void CheckIndices(Tensor indices, long rows, string owner)
    {
        ArgumentNullException.ThrowIfNull(indices);
        if (indices.dtype is not (ScalarType.Int64 or ScalarType.Int32))
        {
            throw new ArgumentException(
                $"{owner}: indices must be Int64 or Int32; got {indices.dtype} " +
                $"{QuantizedWeight.FormatShape(indices.shape)}.",
                nameof(indices));
        }
        if (indices.NumberOfElements == 0) return;
        long min, max;
        using (NewDisposeScope())
        {
            long[] bounds = stack([indices.min(), indices.max()]).to(ScalarType.Int64).cpu().data<long>().ToArray();
            (min, max) = (bounds[0], bounds[1]);
        }
        if (min >= 0 && max < rows) return;
        throw new ArgumentException(
            $"{owner}: index {(min < 0 ? min : max)} is out of range for a table of {rows} rows (valid: 0 to " +
            $"{rows - 1}); indices {QuantizedWeight.FormatShape(indices.shape)}.", nameof(indices));
    }

    /// <summary>The lookup of <see cref="embedding"/> for indices already checked.</summary>
    internal static Tensor EmbeddingRows(Tensor indices, QuantizedWeight weight)
    {
        using var scope = NewDisposeScope();
        long dim = weight.NumberOfElements / weight.Shape[0];
        Tensor flat = indices.reshape(-1).to(ScalarType.Int64, weight.Device);
        Tensor rows = weight switch
        {
            WeightQBytesTensor bytes => BytesRows(bytes, flat, dim),
            WeightQBitsTensor bits => BitsRows(bits, flat, dim),
            _ => throw new ArgumentException($"Unsupported quantized weight {weight}.", nameof(weight)),
        };
        return rows.reshape([.. indices.shape, dim]).MoveToOuterDisposeScope();
    }

    // codes[row] * scale[row], the ops of WeightQBytesTensor.Dequantize on the gathered rows.
    private static Tensor BytesRows(WeightQBytesTensor weight, Tensor flat, long dim)
    {
        Tensor codes = weight.Data.reshape(weight.Shape[0], dim).index_select(0, flat);
        Tensor scale = weight.Scale.NumberOfElements == 1
            ? weight.Scale.reshape(1, 1)
            : weight.Scale.reshape(-1, 1).index_select(0, flat);
        return empty([flat.shape[0], dim], weight.DType, weight.Device).copy_(codes).mul_(scale);
    }

    // Row r holds groups r*gpr .. r*gpr+gpr-1; group i sits in packed row i % packedRows at bit plane
    // i / packedRows (see Packing). Gather those packed rows, shift each down by its plane, mask, then scale and
    // shift as WeightQBitsTensor.Dequantize does.
    private static Tensor BitsRows(WeightQBitsTensor weight, Tensor flat, long dim)
    {
        int bits = weight.QType.Bits();
        long groupsPerRow = dim / weight.GroupSize, packedRows = weight.Packed.shape[0];
        Tensor groups = flat.unsqueeze(1).mul(groupsPerRow).add(arange(groupsPerRow, device: flat.device)).reshape(-1);
        Tensor planes = groups.div(packedRows, RoundingMode.floor).mul(bits).to(ScalarType.Byte).unsqueeze(1);
        Tensor codes = weight.Packed.index_select(0, groups.remainder(packedRows))
            .bitwise_right_shift(planes).bitwise_and((1 << bits) - 1);
        Tensor scale = weight.Scale.index_select(0, groups), shift = weight.Shift.index_select(0, groups);
        Tensor values = empty([groups.shape[0], weight.GroupSize], weight.DType, weight.Device).copy_(codes);
        values = weight.HasZeroPoint ? values.sub_(shift.to(weight.DType)).mul_(scale) : values.mul_(scale).sub_(shift);
        return values.reshape(flat.shape[0], dim);
    }
}
