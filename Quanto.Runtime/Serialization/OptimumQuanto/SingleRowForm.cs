using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// optimum-quanto's file form of a 2/4-bit weight with a single output row quantized per channel (a
/// <c>Linear(d, 1)</c> value or logit head): its affine optimizer drops axis 0 because that axis has length 1, and
/// then reduces over dim 0 only, so scale and shift hold one value per index of the last dimension ((1, in) for a
/// Linear, (1, 1, 1, kw) for a Conv2d), while the codes keep the weight shape (one packed row: codes in the low bits).
/// In memory: a single group (scale (1, 1)) when every scale and every shift are equal, which is what our own
/// writer produces; otherwise groups of one element (group size 1), which hold any per-element scale exactly.
/// </summary>
internal static class SingleRowForm
{
    /// <summary>Rebuilds the weight from the file's tensors (already checked against the form's shapes).</summary>
    internal static QuantizedWeight Read(WeightLayout layout, Tensor packed, Tensor scale, Tensor shift)
    {
        long[] shape = layout.WeightShape.ToArray();
        int numel = checked((int)layout.ElementCount);
        int bits = layout.QType.Bits();
        using var scope = NewDisposeScope();
        Tensor scales = scale.expand(shape).reshape(numel, 1);
        Tensor shifts = shift.expand(shape).reshape(numel, 1);
        bool uniform = scales.eq(scales[0]).all().item<bool>() && shifts.eq(shifts[0]).all().item<bool>();
        if (uniform)
        {
            var single = new WeightQBitsTensor(layout.QType, shape, numel, packed.reshape(1, numel),
                scales.narrow(0, 0, 1).clone(), shifts.narrow(0, 0, 1).clone());
            return single; // the weight detaches its tensors from the scope
        }
        byte[] codes = new byte[numel];
        using (Tensor packedCpu = packed.cpu().contiguous()) Packing.Unpack(packedCpu.bytes, 1, numel, bits, codes);
        var regrouped = new byte[Packing.PackedRows(numel, bits)];
        Packing.Pack(codes, numel, 1, bits, regrouped);
        Tensor repacked = empty([regrouped.Length, 1], ScalarType.Byte);
        repacked.bytes = regrouped;
        var perElement = new WeightQBitsTensor(layout.QType, shape, 1, repacked.to(packed.device),
            scales.contiguous(), shifts.contiguous());
        return perElement;
    }

    /// <summary>Adds the file's tensors for a single-row weight held as one group or as groups of one element.
    /// </summary>
    /// <exception cref="ArgumentException">The per-element scales vary along more than the last dimension, which
    /// optimum-quanto's form cannot hold.</exception>
    internal static void Write(WeightQBitsTensor weight, WeightLayout layout, IDictionary<string, Tensor> target)
    {
        WeightFileForm form = layout.Primary;
        long[] packedShape = form.Part(WeightPartRole.PackedCodes).Shape.ToArray();
        long[] perLast = form.Part(WeightPartRole.Scale).Shape.ToArray();
        long[] shape = layout.WeightShape.ToArray();
        int numel = checked((int)layout.ElementCount);
        if (weight.GroupSize == numel)
        {
            target.Add(form.Part(WeightPartRole.PackedCodes).Key, weight.Packed.reshape(packedShape));
            target.Add(form.Part(WeightPartRole.Scale).Key, Repeated(weight.Scale, perLast));
            target.Add(form.Part(WeightPartRole.Shift).Key, Repeated(weight.Shift, perLast));
            return;
        }
        Tensor scale = LastIndexValues(weight.Scale, shape, perLast, layout.ModulePath);
        Tensor shift;
        try
        {
            shift = LastIndexValues(weight.Shift, shape, perLast, layout.ModulePath);
        }
        catch
        {
            scale.Dispose();
            throw;
        }
        using Tensor codes = weight.UnpackCodes();
        var packed = new byte[numel];
        Packing.Pack(codes.bytes, 1, numel, weight.QType.Bits(), packed);
        Tensor packedTensor = empty(packedShape, ScalarType.Byte);
        packedTensor.bytes = packed;
        target.Add(form.Part(WeightPartRole.PackedCodes).Key, packedTensor);
        target.Add(form.Part(WeightPartRole.Scale).Key, scale);
        target.Add(form.Part(WeightPartRole.Shift).Key, shift);
    }

    /// <summary>A single value (1, 1) repeated to <paramref name="shape"/>.</summary>
    private static Tensor Repeated(Tensor single, long[] shape)
    {
        using var scope = NewDisposeScope();
        return single.reshape(shape.Select(_ => 1L).ToArray()).expand(shape).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>The per-element values (numel, 1) as (1, ..., 1, last), if they vary along the last dim only.</summary>
    private static Tensor LastIndexValues(Tensor perElement, long[] shape, long[] perLast, string modulePath)
    {
        using var scope = NewDisposeScope();
        Tensor full = perElement.reshape(shape);
        Tensor first = full.reshape(-1, shape[^1]).narrow(0, 0, 1);
        if (!full.reshape(-1, shape[^1]).eq(first).all().item<bool>())
        {
            throw new ArgumentException(
                $"Weight of module '{modulePath}' {QuantizedWeight.FormatShape(shape)} has per-element scales that " +
                "vary along more than its last dimension, which optimum-quanto's single-row layout cannot hold; " +
                "save it as a .qnt package.");
        }
        return first.reshape(perLast).contiguous().MoveToOuterDisposeScope();
    }
}
