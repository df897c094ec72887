using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// Maps a <see cref="QuantizedWeight"/> to and from optimum-quanto's state-dict tensors, in the layout
/// <see cref="WeightLayout"/> describes (keys in <see cref="QuantoKeys"/>). In memory a weight always has one scale
/// per output row (8-bit) or per group (2/4-bit); the file forms optimum-quanto uses for a single output row (a 0-d
/// scale; per-last-index scale and shift) are converted on the way in and out.
/// <para>Group size is not stored: readers re-derive it from the weight shape with <see cref="GroupSize.Resolve"/>,
/// as optimum-quanto does (128, then 96, 64, 32, else per channel), unless the caller knows it (a .qnt package or
/// our <c>quanto_group_sizes</c> metadata).</para>
/// </summary>
public static class QuantizedWeightState
{
    /// <summary>
    /// Adds the tensors of <paramref name="weight"/> under <paramref name="modulePath"/> to <paramref name="target"/>.
    /// The added tensors are new handles (views, or small copies where the file form differs) that the target owns
    /// and disposes; the weight keeps its own.
    /// </summary>
    /// <param name="weight">The quantized weight.</param>
    /// <param name="modulePath">The module's path ("" for the root).</param>
    /// <param name="target">Receives the tensors (e.g. <see cref="StateDict.Tensors"/>).</param>
    /// <param name="requestedGroupSize">The group size the reader will re-derive with (optimum-quanto: 128; ours:
    /// the module's, recorded in the file's metadata).</param>
    /// <exception cref="ArgumentException">A 2/4-bit weight's group size is not the one a reader re-derives, so
    /// the file could not be loaded back; save it as a .qnt package, which stores the group size.</exception>
    public static void Write(QuantizedWeight weight, string modulePath, IDictionary<string, Tensor> target,
        int requestedGroupSize = GroupSize.Default)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(target);
        int? fileGroup = null;
        if (weight is WeightQBitsTensor bits)
        {
            long rowLength = bits.NumberOfElements / bits.Shape[0];
            int expected = GroupSize.Resolve(rowLength, requestedGroupSize);
            // One output row read from optimum-quanto's per-last-index form is held with groups of one element.
            bool singleRow = bits.Shape[0] == 1 && bits.GroupSize == 1 && expected == rowLength;
            if (bits.GroupSize != expected && !singleRow)
            {
                throw new ArgumentException(
                    $"Weight of module '{modulePath}' {QuantizedWeight.FormatShape(bits.Shape)} uses group size " +
                    $"{bits.GroupSize}, but a reader re-derives {expected} from its shape; save it as a .qnt " +
                    "package (which stores the group size) or quantize with the default group size.",
                    nameof(weight));
            }
            fileGroup = expected;
        }
        AddTensors(weight, modulePath, target, fileGroup);
    }

    /// <summary>Adds the file-layout tensors of a weight without the group-size compatibility check.</summary>
    /// <param name="weight">The weight.</param>
    /// <param name="modulePath">The module path.</param>
    /// <param name="target">Receives the tensors.</param>
    /// <param name="fileGroup">The group size the file describes (default: the weight's).</param>
    internal static void AddTensors(QuantizedWeight weight, string modulePath, IDictionary<string, Tensor> target,
        int? fileGroup = null)
    {
        switch (weight)
        {
            case WeightQBytesTensor bytes:
            {
                WeightFileForm form = WeightLayout.For(modulePath, bytes.QType, bytes.Shape.ToArray(), 0).Primary;
                target.Add(form.Part(WeightPartRole.Codes).Key, bytes.Data.alias());
                WeightFilePart scale = form.Part(WeightPartRole.Scale);
                target.Add(scale.Key, bytes.Scale.reshape(scale.Shape.ToArray()));
                break;
            }
            case WeightQBitsTensor bits:
            {
                WeightLayout layout =
                    WeightLayout.For(modulePath, bits.QType, bits.Shape.ToArray(), fileGroup ?? bits.GroupSize);
                WeightFileForm form = layout.Primary;
                WeightFilePart packed = form.Part(WeightPartRole.PackedCodes), scale = form.Part(WeightPartRole.Scale);
                WeightFilePart shift = form.Part(WeightPartRole.Shift);
                if (form.Kind == WeightFormKind.PerLastIndex)
                {
                    SingleRowForm.Write(bits, layout, target);
                    break;
                }
                target.Add(packed.Key, bits.Packed.reshape(packed.Shape.ToArray()));
                target.Add(scale.Key, bits.Scale.reshape(scale.Shape.ToArray()));
                target.Add(shift.Key, bits.Shift.reshape(shift.Shape.ToArray()));
                break;
            }
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
    /// <exception cref="QuantoFormatException">A key is missing, a dtype or shape disagrees (the message names
    /// the key and both shapes), or a value is out of range (a NaN or negative scale, a NaN shift, a zero-point past
    /// the qtype's codes, a NaN float8 code; see <see cref="ValueChecks"/>).</exception>
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
        WeightLayout layout;
        try
        {
            layout = WeightLayout.For(modulePath, qtype, weightShape, groupSize);
        }
        catch (ArgumentException e)
        {
            throw new QuantoFormatException(source.Source, e.Message, e);
        }
        WeightFileForm form = Find(source, layout);
        var taken = new Dictionary<WeightPartRole, Tensor>();
        foreach (WeightFilePart part in form.Parts)
        {
            ScalarType? dtype = part.Role switch
            {
                WeightPartRole.Codes => qtype.Info().Storage,
                WeightPartRole.PackedCodes => ScalarType.Byte,
                _ => null,
            };
            taken[part.Role] = source.Take(part.Key, part.Shape.ToArray(), dtype);
        }
        Tensor scale = taken[WeightPartRole.Scale];
        CheckDType(source, layout, form.Part(WeightPartRole.Scale), scale.dtype, scale.dtype);
        ValueChecks.WeightScale(source, form.Part(WeightPartRole.Scale).Key, scale);
        if (!qtype.Info().IsPacked)
        {
            ValueChecks.Codes(source, form.Part(WeightPartRole.Codes).Key, taken[WeightPartRole.Codes], qtype);
            Tensor perRow = scale.reshape(form.Kind == WeightFormKind.PerTensor
                ? [1, .. Enumerable.Repeat(1L, weightShape.Length - 1)]
                : scale.shape);
            return new WeightQBytesTensor(qtype, taken[WeightPartRole.Codes].alias(), perRow);
        }
        Tensor shift = taken[WeightPartRole.Shift];
        CheckDType(source, layout, form.Part(WeightPartRole.Shift), shift.dtype, scale.dtype);
        ValueChecks.Shift(source, form.Part(WeightPartRole.Shift).Key, shift, qtype);
        Tensor packed = taken[WeightPartRole.PackedCodes];
        if (form.Kind == WeightFormKind.PerLastIndex) return SingleRowForm.Read(layout, packed, scale, shift);
        long groups = layout.ElementCount / groupSize;
        long packedRows = Packing.PackedRows(checked((int)groups), qtype.Bits());
        return new WeightQBitsTensor(qtype, weightShape, groupSize, packed.reshape(packedRows, groupSize),
            scale.reshape(groups, 1), shift.reshape(groups, 1));
    }

    /// <summary>The file form the state dict holds; the error names the first key that fits no form.</summary>
    private static WeightFileForm Find(StateDict source, WeightLayout layout)
    {
        WeightFileForm? form = layout.Match(source.ShapeOf);
        if (form is not null) return form;
        foreach (WeightFilePart part in layout.Primary.Parts)
        {
            if (!source.ContainsKey(part.Key)) throw source.Missing(part.Key);
            IReadOnlyList<long> held = source.ShapeOf(part.Key)!;
            if (!layout.Forms.SelectMany(f => f.Parts).Any(p => p.Key == part.Key && p.Shape.SequenceEqual(held)))
            {
                throw new QuantoFormatException(source.Source,
                    $"shape mismatch for '{part.Key}': the file holds {Checksums.FormatShape(held)}, the model " +
                    $"expects {layout.ExpectedShapes(part.Key)}.");
            }
        }
        string shapes = string.Join(", ", layout.Primary.Parts.Select(p =>
            $"'{p.Key}' {Checksums.FormatShape(source.ShapeOf(p.Key)!)}"));
        throw new QuantoFormatException(source.Source,
            $"module '{layout.ModulePath}': the shapes {shapes} do not form one layout of a " +
            $"{Checksums.FormatShape(layout.WeightShape)} {layout.QType.QuantoName()} weight.");
    }

    private static void CheckDType(StateDict source, WeightLayout layout, WeightFilePart part, ScalarType dtype,
        ScalarType scaleDType)
    {
        if (layout.DTypeProblem(part.Role, dtype, scaleDType) is string expected)
        {
            throw new QuantoFormatException(source.Source,
                $"dtype mismatch for '{part.Key}': {SafetensorsDType.NameOf(dtype)}; expected {expected}.");
        }
    }
}
