using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>Input validation shared by the quantizers: every error says what is wrong and what to do.</summary>
internal static class WeightChecks
{
    /// <summary>Float dtypes a weight may have (optimum-quanto's set).</summary>
    internal static bool IsSupportedFloat(ScalarType dtype) =>
        dtype is ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16;

    /// <summary>Throws unless <paramref name="weight"/> is a non-empty, finite, ≥2-D float tensor.</summary>
    internal static void Check(Tensor weight, QType qtype, string what = "weight")
    {
        ArgumentNullException.ThrowIfNull(weight);
        string name = qtype.QuantoName();
        string shape = Tensors.QuantizedWeight.FormatShape(weight.shape);
        if (!IsSupportedFloat(weight.dtype))
        {
            throw new ArgumentException(
                $"Cannot quantize {what} of dtype {weight.dtype} to {name}: only Float32, Float16 and BFloat16 " +
                "weights are supported. Convert it first (e.g. weight.to(float32)).", nameof(weight));
        }
        if (weight.dim() < 2)
        {
            throw new ArgumentException(
                $"Cannot quantize {what} of shape {shape} to {name}: weights need at least 2 dimensions " +
                "(output channels first). 1-D parameters such as biases and norm scales stay float.", nameof(weight));
        }
        if (weight.NumberOfElements == 0)
        {
            throw new ArgumentException(
                $"Cannot quantize an empty {what} (shape {shape}) to {name}.", nameof(weight));
        }
        using var scope = NewDisposeScope();
        Tensor bad = weight.isfinite().logical_not();
        long count = bad.sum().item<long>();
        if (count > 0)
        {
            long[] first = bad.nonzero()[0].data<long>().ToArray();
            throw new ArgumentException(
                $"Cannot quantize {what} of shape {shape} to {name}: it holds {count} NaN or infinite value(s), " +
                $"the first at {Tensors.QuantizedWeight.FormatShape(first)}. Fix the float weights (a diverged " +
                "training run?) before quantizing.", nameof(weight));
        }
    }

    /// <summary>Throws unless <paramref name="groupSize"/> is a positive multiple of 8.</summary>
    internal static void CheckGroupSize(int groupSize)
    {
        if (groupSize <= 0 || groupSize % 8 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize,
                $"Group size must be a positive multiple of 8 (optimum-quanto uses 128); got {groupSize}.");
        }
    }
}
