using System.Globalization;
using Quanto.Quantization;
using static TorchSharp.torch;

namespace Quanto.Tensors;

/// <summary>
/// How one weight is stored quantized: its qtype, the group size actually used, the bytes of codes, scales and shifts,
/// and the bits per weight those make. <see cref="Of"/> reads a quantized weight; <see cref="For"/> tells, from the
/// float weight's shape alone, what freezing it will give (the two agree byte for byte).
/// </summary>
/// <param name="QType">The weight qtype.</param>
/// <param name="Elements">Weight elements.</param>
/// <param name="Rows">Output rows (channels), each with its own scale or groups.</param>
/// <param name="GroupSize">Elements per group of a 2/4-bit weight (the row length when per channel); null for 8-bit
/// weights, which have one scale per row.</param>
/// <param name="RequestedGroupSize">The group size asked for (2/4-bit), before optimum-quanto's
/// 128/96/64/32/per-channel fallback; null for 8-bit weights.</param>
/// <param name="Bytes">Bytes of the stored codes, scales and shifts.</param>
/// <param name="FloatBytes">Bytes of the float weight of the same shape in the scales' dtype.</param>
public sealed record WeightLayout(QType QType, long Elements, long Rows, int? GroupSize, int? RequestedGroupSize,
    long Bytes, long FloatBytes)
{
    /// <summary>True when each row has one scale (8-bit) or one group (2/4-bit rows no longer than the group, or
    /// that no group size of the fallback divides).</summary>
    public bool PerChannel => GroupSize is null || GroupSize == Elements / Rows;

    /// <summary>Stored bits per weight element, scales and shifts included (qint4 in groups of 128 with float32
    /// scale and shift: 4 + 64 / 128 = 4.5).</summary>
    public double BitsPerWeight => Bytes * 8.0 / Elements;

    /// <summary>The layout of a quantized weight.</summary>
    /// <param name="weight">The weight.</param>
    /// <param name="requestedGroupSize">The group size its module asked for (null: the default 128).</param>
    public static WeightLayout Of(QuantizedWeight weight, int? requestedGroupSize = null)
    {
        ArgumentNullException.ThrowIfNull(weight);
        int? group = weight is WeightQBitsTensor bits ? bits.GroupSize : null;
        int? requested = group is null ? null : requestedGroupSize ?? Quantization.GroupSize.Default;
        return new WeightLayout(weight.QType, weight.NumberOfElements, weight.Shape[0], group, requested,
            weight.ByteSize, weight.FloatByteSize);
    }

    /// <summary>
    /// The layout freezing a float weight of <paramref name="shape"/> gives with these settings: 8-bit codes plus
    /// one scale per row, or 2/4-bit codes packed in optimum-quanto's layout plus a scale and a float shift per
    /// group, group size from <see cref="Quantization.GroupSize.Resolve"/>.
    /// </summary>
    /// <param name="qtype">The weight qtype.</param>
    /// <param name="shape">The float weight's shape, output rows first.</param>
    /// <param name="dtype">The float weight's dtype (the scales' dtype).</param>
    /// <param name="requestedGroupSize">The group size asked for (null: 128).</param>
    /// <exception cref="ArgumentException">An empty or 1-D shape.</exception>
    public static WeightLayout For(QType qtype, ReadOnlySpan<long> shape, ScalarType dtype,
        int? requestedGroupSize = null)
    {
        if (shape.Length < 2)
            throw new ArgumentException($"A weight has at least 2 dimensions; got {shape.Length}.", nameof(shape));
        long elements = 1;
        foreach (long d in shape) elements = checked(elements * d);
        long rows = shape[0];
        if (elements == 0) throw new ArgumentException("The weight is empty.", nameof(shape));
        long scaleBytes = QuantizedWeight.ElementSize(dtype);
        QTypeInfo info = qtype.Info();
        long floatBytes = elements * scaleBytes;
        if (!info.IsPacked)
            return new WeightLayout(qtype, elements, rows, null, null, elements + rows * scaleBytes, floatBytes);
        int requested = requestedGroupSize ?? Quantization.GroupSize.Default;
        int group = Quantization.GroupSize.Resolve(elements / rows, requested);
        long groups = elements / group;
        long packed = (long)Packing.PackedRows(checked((int)groups), info.Bits) * group;
        return new WeightLayout(qtype, elements, rows, group, requested, packed + 2 * groups * scaleBytes, floatBytes);
    }

    /// <summary>"qint4, group 32 (fallback from 128), 4.80 bits/weight, 9,216 bytes".</summary>
    public override string ToString()
    {
        CultureInfo c = CultureInfo.InvariantCulture;
        string grouping = GroupSize switch
        {
            null => "per channel",
            int g when PerChannel => string.Create(c, $"per channel (rows of {g})"),
            int g when g != RequestedGroupSize => string.Create(c, $"group {g} (fallback from {RequestedGroupSize})"),
            int g => string.Create(c, $"group {g}"),
        };
        return string.Create(c, $"{QType.QuantoName()}, {grouping}, {BitsPerWeight:F2} bits/weight, {Bytes:N0} bytes");
    }
}
