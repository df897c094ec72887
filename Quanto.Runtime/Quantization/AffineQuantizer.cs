using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>Group-wise affine quantization for int2 and int4 (optimum-quanto's quantize_affine + PackedTensor).</summary>
public static class AffineQuantizer
{
    /// <summary>
    /// Quantizes <paramref name="weight"/> viewed as (numel / groupSize, groupSize): one group per row, groups running
    /// along the input features of each output row. Codes are clamp(round((w + shift) / scale), 0, 2^bits - 1) (ties to
    /// even), or with a zero-point clamp(round(w / scale) + zp, ...); they are packed along the group rows.
    /// </summary>
    /// <param name="weight">Float weight, at least 2-D, finite.</param>
    /// <param name="qtype">qint2 or qint4.</param>
    /// <param name="groupSize">Elements per group: the row length (per channel), or a multiple of 8 that divides it
    /// (see <see cref="GroupSize.Resolve"/>).</param>
    /// <param name="optimizer">Chooses scale and shift; by default <see cref="Optimizer.DefaultFor"/>'s (HQQ with a
    /// float shift, Max with a zero-point).</param>
    /// <param name="shiftMode">Float shift (default) or uint8 zero-point.</param>
    /// <exception cref="ArgumentException">Bad weight, qtype, or a group size that does not divide the rows.</exception>
    public static WeightQBitsTensor Quantize(
        Tensor weight, QType qtype, int groupSize, AffineOptimizer? optimizer = null, ShiftMode shiftMode = ShiftMode.Float)
    {
        QTypeInfo info = qtype.Info();
        if (!info.IsPacked)
        {
            throw new ArgumentException(
                $"Affine quantization covers qint2 and qint4; {info.Name} is symmetric (use SymmetricQuantizer).",
                nameof(qtype));
        }
        WeightChecks.Check(weight, qtype);
        return QuantizeChecked(weight, info, groupSize, optimizer, shiftMode);
    }

    /// <summary>Quantize for a weight <see cref="WeightChecks.Check"/> already passed (the NaN/Inf scan reads the
    /// whole weight: once is enough).</summary>
    internal static WeightQBitsTensor QuantizeChecked(
        Tensor weight, QTypeInfo info, int groupSize, AffineOptimizer? optimizer, ShiftMode shiftMode)
    {
        QType qtype = info.QType;
        long rowLength = weight.NumberOfElements / weight.shape[0];
        // One group per row (per channel) may have any length; smaller groups must be a multiple of 8.
        if (groupSize != rowLength) WeightChecks.CheckGroupSize(groupSize);
        if (rowLength % groupSize != 0)
        {
            throw new ArgumentException(
                $"Group size {groupSize} does not divide the {rowLength} elements of each output row of shape " +
                $"{QuantizedWeight.FormatShape(weight.shape)}; pick a divisor, or let GroupSize.Resolve choose.",
                nameof(groupSize));
        }

        using var noGrad = no_grad();
        Tensor grouped = weight.detach().contiguous().reshape(-1, groupSize);
        long groups = grouped.shape[0];
        int rows = checked((int)groups);
        AffineOptimizer chosen = optimizer ?? Optimizer.DefaultAffine(shiftMode);
        Tensor scale = empty([groups, 1], weight.dtype, weight.device);
        Tensor shift = empty([groups, 1], shiftMode == ShiftMode.ZeroPoint ? ScalarType.Byte : weight.dtype, weight.device);
        var codes = new byte[groups * groupSize];
        // Groups are independent: optimize and encode block by block (see RowBlocks); pack once at the end because
        // the packed layout interleaves rows from across the whole matrix.
        RowBlocks.ForEach(groups, groupSize, (start, count) =>
        {
            Tensor block = grouped.narrow(0, start, count);
            (Tensor blockScale, Tensor blockShift) = chosen.Optimize(block, qtype, shiftMode);
            if (shiftMode == ShiftMode.ZeroPoint)
                blockShift = blockShift.div(blockScale).round().clamp(0, info.MaxCode).to(ScalarType.Byte);
            scale.narrow(0, start, count).copy_(blockScale);
            shift.narrow(0, start, count).copy_(blockShift);
            using Tensor blockCodes = Codes(block, blockScale, blockShift, info.MaxCode).cpu().contiguous();
            blockCodes.bytes.CopyTo(codes.AsSpan(checked((int)(start * groupSize))));
        });

        int packedRows = Packing.PackedRows(rows, info.Bits);
        Tensor packed = empty([packedRows, groupSize], ScalarType.Byte);
        Packing.Pack(codes, rows, groupSize, info.Bits, packed.bytes);
        if (weight.device.type != packed.device.type) packed = packed.to(weight.device);
        return new WeightQBitsTensor(qtype, weight.shape, groupSize, packed, scale, shift);
    }

    /// <summary>uint8 codes of the grouped values for a float shift or a uint8 zero-point.</summary>
    internal static Tensor Codes(Tensor grouped, Tensor scale, Tensor shift, int maxCode)
    {
        using var scope = NewDisposeScope();
        Tensor q = shift.dtype == ScalarType.Byte
            ? grouped.div(scale).round().add(shift.to(grouped.dtype))
            : grouped.add(shift).div(scale).round();
        return q.clamp(0, maxCode).to(ScalarType.Byte).MoveToOuterDisposeScope();
    }
}
