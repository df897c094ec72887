using Quanto.Quantization;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>What a tensor of a quantized weight holds, which fixes the dtypes it may have in a file.</summary>
public enum WeightPartRole
{
    /// <summary>8-bit codes (<c>weight._data</c>): the qtype's storage dtype (I8, F8_E4M3...).</summary>
    Codes,

    /// <summary>Packed 2/4-bit codes (<c>weight._data._data</c>): U8.</summary>
    PackedCodes,

    /// <summary>The scale (<c>weight._scale</c>): F32, F16 or BF16.</summary>
    Scale,

    /// <summary>The shift (<c>weight._shift</c>): U8 (a zero-point) or the scale's dtype.</summary>
    Shift,
}

/// <summary>How the scale (and shift) of a file form relate to the weight: the in-memory conversion it needs.
/// </summary>
public enum WeightFormKind
{
    /// <summary>One scale per output row (8-bit), or per group (2/4-bit): the canonical in-memory layout.</summary>
    PerRow,

    /// <summary>8-bit weight with one output row: optimum-quanto quantizes it per tensor, a 0-d scale.</summary>
    PerTensor,

    /// <summary>2/4-bit weight with one output row, quantized per channel: optimum-quanto's optimizer then
    /// reduces over dim 0 only, so scale and shift have one value per index of the last dimension
    /// (Linear: (1, in); Conv2d: (1, 1, 1, kw)).</summary>
    PerLastIndex,
}

/// <summary>One tensor of a weight's file form.</summary>
/// <param name="Key">The full key (module path joined with <c>weight._data</c>...).</param>
/// <param name="Shape">The shape the file holds.</param>
/// <param name="Role">What it holds (fixes the accepted dtypes).</param>
public sealed record WeightFilePart(string Key, IReadOnlyList<long> Shape, WeightPartRole Role);

/// <summary>One way a weight can be laid out in a file: its tensors and the conversion it needs.</summary>
/// <param name="Kind">The scale layout.</param>
/// <param name="Parts">The tensors, codes first.</param>
public sealed record WeightFileForm(WeightFormKind Kind, IReadOnlyList<WeightFilePart> Parts)
{
    /// <summary>The part with a role.</summary>
    public WeightFilePart Part(WeightPartRole role) => Parts.First(p => p.Role == role);
}

/// <summary>
/// The one description of optimum-quanto's file layout for a quantized weight (its source:
/// Quanto.Runtime/Serialization/README.md, section 1). Readers, writers and <c>quanto inspect</c>'s header check all
/// ask it, so the keys, dtypes and shapes are written down once. Shapes, for a weight (out, ...) with n = numel:
/// <list type="bullet">
/// <item>8-bit: codes shaped like the weight; scale (out, 1, ...), or [] when out == 1 (per tensor).</item>
/// <item>2/4-bit grouped (group g &lt; row): packed (ceil(n / g / k), g), scale and shift (n / g, 1); k = 8 / bits.
/// </item>
/// <item>2/4-bit per channel (g = row): packed keeps the weight shape with dim 0 packed (ceil(out / k), ...);
/// scale and shift (out, 1, ...), or (1, ..., 1, last) when out == 1.</item>
/// </list>
/// For out == 1 the first form is what optimum-quanto writes (and we write); the (1, 1, ...) form that earlier
/// Quanto.NET versions wrote is still read.
/// </summary>
public sealed class WeightLayout
{
    private WeightLayout(string modulePath, QType qtype, long[] weightShape, int groupSize,
        IReadOnlyList<WeightFileForm> forms)
    {
        ModulePath = modulePath;
        QType = qtype;
        WeightShape = weightShape;
        GroupSize = groupSize;
        Forms = forms;
    }

    /// <summary>The module path ("" for the root).</summary>
    public string ModulePath { get; }

    /// <summary>The weight's qtype.</summary>
    public QType QType { get; }

    /// <summary>The float weight's shape.</summary>
    public IReadOnlyList<long> WeightShape { get; }

    /// <summary>The group size as the file knows it (the row length when per channel; 0 for 8-bit).</summary>
    public int GroupSize { get; }

    /// <summary>The accepted forms; the first is the one written.</summary>
    public IReadOnlyList<WeightFileForm> Forms { get; }

    /// <summary>The form written.</summary>
    public WeightFileForm Primary => Forms[0];

    /// <summary>Elements of the weight.</summary>
    public long ElementCount => WeightShape.Aggregate(1L, (a, b) => checked(a * b));

    /// <summary>Elements per output row.</summary>
    public long RowLength => ElementCount / WeightShape[0];

    /// <summary>True for a 2/4-bit weight stored per channel (group_size None upstream).</summary>
    public bool IsPerChannel => QType.Info().IsPacked && GroupSize == RowLength;

    /// <summary>The layout of a weight.</summary>
    /// <param name="modulePath">The module path ("" for the root).</param>
    /// <param name="qtype">The weight's qtype.</param>
    /// <param name="weightShape">The float weight's shape (rank 2 or more, no zero dimension).</param>
    /// <param name="groupSize">For 2/4-bit weights: the group size, which must divide the row (the row length
    /// means per channel); ignored for 8-bit.</param>
    /// <exception cref="ArgumentException">The shape or group size cannot describe a weight.</exception>
    public static WeightLayout For(string modulePath, QType qtype, IReadOnlyList<long> weightShape, int groupSize)
    {
        ArgumentNullException.ThrowIfNull(modulePath);
        ArgumentNullException.ThrowIfNull(weightShape);
        long[] shape = weightShape.ToArray();
        if (shape.Length < 2 || shape.Any(d => d <= 0) || !TryCount(shape, out long numel))
        {
            throw new ArgumentException(
                $"module '{modulePath}': {Checksums.FormatShape(shape)} is not a weight shape (rank 2 or more, " +
                "no empty dimension).", nameof(weightShape));
        }
        QTypeInfo info = qtype.Info();
        string Key(string suffix) => QuantoKeys.Join(modulePath, suffix);
        long[] perRow = [shape[0], .. Enumerable.Repeat(1L, shape.Length - 1)];
        var forms = new List<WeightFileForm>();
        if (!info.IsPacked)
        {
            WeightFilePart codes = new(Key(QuantoKeys.Data), shape, WeightPartRole.Codes);
            if (shape[0] == 1) forms.Add(BytesForm(WeightFormKind.PerTensor, codes, [], Key));
            forms.Add(BytesForm(WeightFormKind.PerRow, codes, perRow, Key));
            return new WeightLayout(modulePath, qtype, shape, 0, forms);
        }
        long row = numel / shape[0];
        if (groupSize <= 0 || row % groupSize != 0)
        {
            throw new ArgumentException(
                $"module '{modulePath}': group size {groupSize} does not divide the rows of {row} elements of " +
                $"{Checksums.FormatShape(shape)}.", nameof(groupSize));
        }
        if (numel / groupSize > int.MaxValue)
            throw new ArgumentException($"module '{modulePath}': {numel / groupSize} groups is too many.");
        int bits = info.Bits;
        if (groupSize < row)
        {
            long groups = numel / groupSize;
            long[] packed = [Packing.PackedRows((int)groups, bits), groupSize];
            forms.Add(BitsForm(WeightFormKind.PerRow, packed, [groups, 1], Key));
            return new WeightLayout(modulePath, qtype, shape, groupSize, forms);
        }
        if (shape[0] > int.MaxValue)
            throw new ArgumentException($"module '{modulePath}': {shape[0]} output rows is too many.");
        long[] packedPerChannel = [Packing.PackedRows((int)shape[0], bits), .. shape[1..]];
        if (shape[0] == 1)
        {
            long[] perLast = [.. Enumerable.Repeat(1L, shape.Length - 1), shape[^1]];
            forms.Add(BitsForm(WeightFormKind.PerLastIndex, packedPerChannel, perLast, Key));
        }
        forms.Add(BitsForm(WeightFormKind.PerRow, packedPerChannel, perRow, Key));
        return new WeightLayout(modulePath, qtype, shape, groupSize, forms);
    }

    /// <summary>
    /// The first form whose every part the file holds with that shape; null when none fits.
    /// </summary>
    /// <param name="shapeOf">The shape of a key in the file, or null when the key is absent.</param>
    public WeightFileForm? Match(Func<string, IReadOnlyList<long>?> shapeOf)
    {
        ArgumentNullException.ThrowIfNull(shapeOf);
        return Forms.FirstOrDefault(form => form.Parts.All(part =>
            shapeOf(part.Key) is { } shape && shape.SequenceEqual(part.Shape)));
    }

    /// <summary>The shapes the forms accept for a key, "[2, 1] or []".</summary>
    public string ExpectedShapes(string key) => string.Join(" or ", Forms.SelectMany(f => f.Parts)
        .Where(p => p.Key == key).Select(p => Checksums.FormatShape(p.Shape)).Distinct());

    /// <summary>The dtypes a part accepts, given the scale's dtype (for the shift); null when it is acceptable.
    /// </summary>
    /// <param name="role">The part's role.</param>
    /// <param name="dtype">The dtype in the file.</param>
    /// <param name="scaleDType">The scale's dtype in the file.</param>
    /// <returns>null, or the accepted dtypes ("F32, F16 or BF16").</returns>
    public string? DTypeProblem(WeightPartRole role, ScalarType dtype, ScalarType scaleDType) => role switch
    {
        WeightPartRole.Codes => dtype == QType.Info().Storage ? null : SafetensorsDType.NameOf(QType.Info().Storage),
        WeightPartRole.PackedCodes => dtype == ScalarType.Byte ? null : "U8",
        WeightPartRole.Scale => IsScaleDType(dtype) ? null : "F32, F16 or BF16",
        _ => dtype == ScalarType.Byte || dtype == scaleDType
            ? null
            : $"U8 (a zero-point) or the scale's {SafetensorsDType.NameOf(scaleDType)}",
    };

    /// <summary>True for the float dtypes a scale may have.</summary>
    public static bool IsScaleDType(ScalarType dtype) =>
        dtype is ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16;

    private static WeightFileForm BytesForm(WeightFormKind kind, WeightFilePart codes, long[] scale,
        Func<string, string> key) =>
        new(kind, [codes, new WeightFilePart(key(QuantoKeys.Scale), scale, WeightPartRole.Scale)]);

    private static WeightFileForm BitsForm(WeightFormKind kind, long[] packed, long[] scale,
        Func<string, string> key) =>
        new(kind,
        [
            new WeightFilePart(key(QuantoKeys.PackedData), packed, WeightPartRole.PackedCodes),
            new WeightFilePart(key(QuantoKeys.Scale), scale, WeightPartRole.Scale),
            new WeightFilePart(key(QuantoKeys.Shift), scale, WeightPartRole.Shift),
        ]);

    private static bool TryCount(long[] shape, out long count)
    {
        count = 1;
        foreach (long d in shape)
        {
            if (d != 0 && count > long.MaxValue / d) return false;
            count *= d;
        }
        return true;
    }
}
