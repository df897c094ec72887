using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>The one entry point that turns a float weight into a <see cref="QuantizedWeight"/> for any qtype.</summary>
public static class WeightQuantizer
{
    /// <summary>
    /// Quantizes a weight the way optimum-quanto does: int8 and float8 symmetric per output channel; int2 and int4
    /// group-wise affine along the input features, packed.
    /// </summary>
    /// <param name="weight">Float32, Float16 or BFloat16 weight, output channels first, finite, non-empty.</param>
    /// <param name="qtype">Target qtype.</param>
    /// <param name="groupSize">Wanted group size for 2/4-bit types (default 128; the fallback of
    /// <see cref="GroupSize.Resolve"/> applies). Ignored for 8-bit types, but still validated.</param>
    /// <param name="optimizer">Default: <see cref="Optimizer.DefaultFor"/>. Must match the qtype's family.</param>
    /// <param name="shiftMode">Float shift (default) or uint8 zero-point, for 2/4-bit types.</param>
    /// <exception cref="ArgumentException">Bad weight, or an optimizer of the wrong family.</exception>
    /// <exception cref="ArgumentOutOfRangeException">groupSize is not a positive multiple of 8.</exception>
    public static QuantizedWeight Quantize(
        Tensor weight, QType qtype, int? groupSize = null, Optimizer? optimizer = null,
        ShiftMode shiftMode = ShiftMode.Float)
    {
        ArgumentNullException.ThrowIfNull(weight);
        QTypeInfo info = qtype.Info();
        if (groupSize is int requested) WeightChecks.CheckGroupSize(requested);
        optimizer ??= Optimizer.DefaultFor(qtype, shiftMode);
        if (!info.IsPacked)
        {
            return optimizer is SymmetricOptimizer symmetric
                ? SymmetricQuantizer.Quantize(weight, qtype, symmetric)
                : throw WrongFamily(optimizer, info, nameof(AbsmaxOptimizer));
        }
        if (optimizer is not AffineOptimizer affine)
            throw WrongFamily(optimizer, info, $"{nameof(MaxOptimizer)} or {nameof(HqqOptimizer)}");
        WeightChecks.Check(weight, qtype);
        long rowLength = weight.NumberOfElements / weight.shape[0];
        int group = GroupSize.Resolve(rowLength, groupSize ?? GroupSize.Default);
        return AffineQuantizer.QuantizeChecked(weight, info, group, affine, shiftMode);
    }

    private static ArgumentException WrongFamily(Optimizer optimizer, QTypeInfo info, string expected) =>
        new($"{optimizer} cannot quantize {info.Name} weights; use {expected}.", nameof(optimizer));
}
