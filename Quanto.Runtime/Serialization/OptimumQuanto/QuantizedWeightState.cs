using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// Maps a <see cref="QuantizedWeight"/> to and from optimum-quanto's state-dict tensors (see <see cref="QuantoKeys"/>).
/// <para>File shapes. 8-bit: data shaped like the weight, scale (out, 1, ...) with the weight's rank.
/// 2/4-bit grouped (group g &lt; row length): packed (ceil(groups / k), g), scale and shift (groups, 1), where
/// groups = numel / g and k = 8 / bits. 2/4-bit per channel (<see cref="WeightQBitsTensor.IsPerChannel"/>, which
/// optimum-quanto stores with group_size None): packed keeps the weight's shape with dim 0 packed,
/// (ceil(out / k), in, kh, kw) for a Conv2d, and scale and shift are (out, 1, 1, 1) — the same bytes as our 2-D
/// (rows, row length) layout, only the shape differs.</para>
/// <para>Group size is not stored: it is re-derived from the weight shape with <see cref="GroupSize.Resolve"/>,
/// as optimum-quanto does (128, then 96, 64, 32, else per channel).</para>
/// </summary>
public static class QuantizedWeightState
{
    /// <summary>
    /// Adds the tensors of <paramref name="weight"/> under <paramref name="modulePath"/> to <paramref name="target"/>.
    /// The added tensors are new handles (views) on the weight's memory: the target owns and disposes them, the
    /// weight keeps its own.
    /// </summary>
    /// <param name="weight">The quantized weight.</param>
    /// <param name="modulePath">The module's path ("" for the root).</param>
    /// <param name="target">Receives the tensors (e.g. <see cref="StateDict.Tensors"/>).</param>
    /// <param name="requestedGroupSize">The group size the reader will re-derive with (optimum-quanto: 128).</param>
    /// <exception cref="ArgumentException">A 2/4-bit weight's group size is not the one a reader re-derives, so
    /// the file could not be loaded back; save it as a .qnt package, which stores the group size.</exception>
    public static void Write(QuantizedWeight weight, string modulePath, IDictionary<string, Tensor> target,
        int requestedGroupSize = GroupSize.Default)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(target);
        if (weight is WeightQBitsTensor bits)
        {
            long rowLength = bits.NumberOfElements / bits.Shape[0];
            int expected = GroupSize.Resolve(rowLength, requestedGroupSize);
            if (bits.GroupSize != expected)
            {
                throw new ArgumentException(
                    $"Weight of module '{modulePath}' {QuantizedWeight.FormatShape(bits.Shape)} uses group size " +
                    $"{bits.GroupSize}, but a reader re-derives {expected} from its shape; save it as a .qnt " +
                    "package (which stores the group size) or quantize with the default group size.",
                    nameof(weight));
            }
        }
        AddTensors(weight, modulePath, target);
    }

    /// <summary>Adds the file-layout tensors of a weight without the group-size compatibility check.</summary>
    internal static void AddTensors(QuantizedWeight weight, string modulePath, IDictionary<string, Tensor> target)
    {
        switch (weight)
        {
            case WeightQBytesTensor bytes:
                target.Add(QuantoKeys.Join(modulePath, QuantoKeys.Data), bytes.Data.alias());
                target.Add(QuantoKeys.Join(modulePath, QuantoKeys.Scale), bytes.Scale.alias());
                break;
            case WeightQBitsTensor bits:
                FileShapes(bits.QType, bits.Shape.ToArray(), bits.GroupSize, out long[] packed, out long[] perGroup);
                target.Add(QuantoKeys.Join(modulePath, QuantoKeys.PackedData), bits.Packed.reshape(packed));
                target.Add(QuantoKeys.Join(modulePath, QuantoKeys.Scale), bits.Scale.reshape(perGroup));
                target.Add(QuantoKeys.Join(modulePath, QuantoKeys.Shift), bits.Shift.reshape(perGroup));
                break;
            default:
                throw new ArgumentException($"Unsupported quantized weight {weight.GetType().Name}.", nameof(weight));
        }
    }

    /// <summary>
    /// Rebuilds a quantized weight from state-dict tensors, checking every dtype and shape. The tensors are taken
    /// from <paramref name="source"/> (marked used); the returned weight holds its own views on their memory.
    /// </summary>
    /// <param name="source">The loaded state dict.</param>
    /// <param name="modulePath">The module's path ("" for the root).</param>
    /// <param name="qtype">From the quantization map.</param>
    /// <param name="weightShape">The float weight's shape, from the module ([out, in] or [out, in, kh, kw]).</param>
    /// <param name="requestedGroupSize">The group size to re-derive with (optimum-quanto: 128).</param>
    /// <exception cref="QuantoFormatException">A key is missing, or a dtype or shape disagrees (the message names
    /// the key and both shapes).</exception>
    public static QuantizedWeight Read(StateDict source, string modulePath, QType qtype, ReadOnlySpan<long> weightShape,
        int requestedGroupSize = GroupSize.Default)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (weightShape.Length < 2 || weightShape[0] <= 0)
            throw new ArgumentException("The weight shape needs at least 2 dimensions.", nameof(weightShape));
        long numel = 1;
        foreach (long d in weightShape) numel = checked(numel * d);
        int group = qtype.Info().IsPacked ? GroupSize.Resolve(numel / weightShape[0], requestedGroupSize) : 0;
        return ReadExact(source, modulePath, qtype, weightShape.ToArray(), group);
    }

    /// <summary>Like <see cref="Read"/> with a known group size (the .qnt package stores it).</summary>
    internal static QuantizedWeight ReadExact(StateDict source, string modulePath, QType qtype, long[] weightShape,
        int groupSize)
    {
        QTypeInfo info = qtype.Info();
        long numel = weightShape.Length >= 2 && weightShape.All(d => d > 0) ? ElementCount(weightShape) : -1;
        if (numel < 0)
        {
            throw new QuantoFormatException(source.Source,
                $"module '{modulePath}': {Checksums.FormatShape(weightShape)} is not a valid weight shape.");
        }
        long[] perChannelScale = [weightShape[0], .. Enumerable.Repeat(1L, weightShape.Length - 1)];
        if (!info.IsPacked)
        {
            Tensor data = source.Take(QuantoKeys.Join(modulePath, QuantoKeys.Data), weightShape, info.Storage);
            Tensor scale = source.Take(QuantoKeys.Join(modulePath, QuantoKeys.Scale), perChannelScale);
            CheckFloat(source, QuantoKeys.Join(modulePath, QuantoKeys.Scale), scale);
            return new WeightQBytesTensor(qtype, data.alias(), scale.alias());
        }
        if (groupSize <= 0 || numel % groupSize != 0)
        {
            throw new QuantoFormatException(source.Source,
                $"module '{modulePath}': group size {groupSize} does not divide the weight's {numel} elements.");
        }
        if (numel / groupSize > int.MaxValue)
        {
            throw new QuantoFormatException(source.Source,
                $"module '{modulePath}': {numel / groupSize} groups is too many.");
        }
        FileShapes(qtype, weightShape, groupSize, out long[] packedShape, out long[] perGroup);
        string scaleKey = QuantoKeys.Join(modulePath, QuantoKeys.Scale);
        string shiftKey = QuantoKeys.Join(modulePath, QuantoKeys.Shift);
        Tensor packed = source.Take(QuantoKeys.Join(modulePath, QuantoKeys.PackedData), packedShape, ScalarType.Byte);
        Tensor scaleT = source.Take(scaleKey, perGroup);
        Tensor shift = source.Take(shiftKey, perGroup);
        CheckFloat(source, scaleKey, scaleT);
        if (shift.dtype != ScalarType.Byte && shift.dtype != scaleT.dtype)
        {
            throw new QuantoFormatException(source.Source,
                $"dtype mismatch for '{shiftKey}': {SafetensorsDType.NameOf(shift.dtype)}; expected U8 (zero-point) " +
                $"or the scale's {SafetensorsDType.NameOf(scaleT.dtype)}.");
        }
        long groups = numel / groupSize;
        long packedRows = Packing.PackedRows(checked((int)groups), info.Bits);
        return new WeightQBitsTensor(qtype, weightShape, groupSize, packed.reshape(packedRows, groupSize),
            scaleT.reshape(groups, 1), shift.reshape(groups, 1));
    }

    /// <summary>The packed-data and scale/shift shapes optimum-quanto uses in files.</summary>
    internal static void FileShapes(QType qtype, long[] weightShape, int groupSize, out long[] packed,
        out long[] perGroup)
    {
        int bits = qtype.Bits();
        long numel = weightShape.Aggregate(1L, (a, b) => checked(a * b));
        long rowLength = numel / weightShape[0];
        if (groupSize == rowLength)
        {
            // Per channel: group_size None upstream, so the codes keep the weight's shape, packed along dim 0.
            packed = [Packing.PackedRows(checked((int)weightShape[0]), bits), .. weightShape[1..]];
            perGroup = [weightShape[0], .. Enumerable.Repeat(1L, weightShape.Length - 1)];
        }
        else
        {
            long groups = numel / groupSize;
            packed = [Packing.PackedRows(checked((int)groups), bits), groupSize];
            perGroup = [groups, 1];
        }
    }

    /// <summary>Product of the dimensions, or -1 when it overflows.</summary>
    private static long ElementCount(long[] shape)
    {
        try
        {
            return shape.Aggregate(1L, (a, b) => checked(a * b));
        }
        catch (OverflowException)
        {
            return -1;
        }
    }

    private static void CheckFloat(StateDict source, string key, Tensor scale)
    {
        if (scale.dtype is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))
        {
            throw new QuantoFormatException(source.Source,
                $"dtype mismatch for '{key}': {SafetensorsDType.NameOf(scale.dtype)}; expected F32, F16 or BF16.");
        }
    }
}
