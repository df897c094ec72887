using System.Numerics;
using System.Runtime.InteropServices;
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
        long count = CountNonFinite(weight, out long firstIndex);
        if (count > 0)
        {
            long[] first = new long[weight.dim()];
            for (int d = first.Length - 1; d >= 0; d--)
            {
                first[d] = firstIndex % weight.shape[d];
                firstIndex /= weight.shape[d];
            }
            throw new ArgumentException(
                $"Cannot quantize {what} of shape {shape} to {name}: it holds {count} NaN or infinite value(s), " +
                $"the first at {Tensors.QuantizedWeight.FormatShape(first)}. Fix the float weights (a diverged " +
                "training run?) before quantizing.", nameof(weight));
        }
    }

    /// <summary>Counts NaN/Inf elements (exponent bits all ones) and finds the first, by flat row-major index.
    /// Scans the raw bits in place on the CPU: a whole-tensor isfinite() costs a fresh mask allocation.</summary>
    internal static long CountNonFinite(Tensor weight, out long firstIndex)
    {
        using Tensor cpu = weight.device.type == TorchSharp.DeviceType.CPU ? weight.contiguous() : weight.cpu().contiguous();
        ReadOnlySpan<byte> bytes = cpu.bytes;
        return weight.dtype == ScalarType.Float32
            ? CountNonFinite(MemoryMarshal.Cast<byte, uint>(bytes), 0x7F800000u, out firstIndex)
            : CountNonFinite(MemoryMarshal.Cast<byte, ushort>(bytes),
                weight.dtype == ScalarType.Float16 ? (ushort)0x7C00 : (ushort)0x7F80, out firstIndex);
    }

    private static long CountNonFinite<T>(ReadOnlySpan<T> bits, T exponentMask, out long firstIndex)
        where T : unmanaged, IBinaryInteger<T>
    {
        firstIndex = -1;
        long count = 0;
        int i = 0;
        var mask = new Vector<T>(exponentMask);
        for (; i <= bits.Length - Vector<T>.Count; i += Vector<T>.Count)
        {
            var v = new Vector<T>(bits.Slice(i, Vector<T>.Count));
            if (!Vector.EqualsAny(v & mask, mask)) continue;
            for (int j = i; j < i + Vector<T>.Count; j++) Tally(bits[j], exponentMask, j, ref count, ref firstIndex);
        }
        for (; i < bits.Length; i++) Tally(bits[i], exponentMask, i, ref count, ref firstIndex);
        return count;
    }

    private static void Tally<T>(T value, T exponentMask, long index, ref long count, ref long firstIndex)
        where T : unmanaged, IBinaryInteger<T>
    {
        if ((value & exponentMask) != exponentMask) return;
        count++;
        if (firstIndex < 0) firstIndex = index;
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
