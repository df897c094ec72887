using System.Globalization;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// The values a loaded quantized module may hold. A NaN or infinite scale, shift or bias, or a zero activation
/// scale, would otherwise load silently: the next layer's int8 quantizer turns NaN into finite codes, so nothing
/// downstream shows it. Each failure is a <see cref="QuantoFormatException"/> naming the file, the key, the value
/// and its index.
/// <para>Weight scales may be 0: optimum-quanto stores 0 for an all-zero row and for a group of equal values (its
/// optimizers have no zero-range guard), and so for every column of a single-row 2/4-bit weight; the dequantized
/// values are then exact (0, or -shift). Activation scales are divisors, so they must be positive.</para>
/// </summary>
internal static class ValueChecks
{
    /// <summary>Elements converted to float at a time (bounds the temporary memory for large code tensors).</summary>
    private const long Chunk = 1 << 20;

    /// <summary>A weight scale: finite, not negative.</summary>
    internal static void WeightScale(StateDict source, string key, Tensor scale) =>
        Check(source, key, scale, t => t.isfinite().logical_not().logical_or(t.lt(0)),
            "a weight scale must be finite and not negative");

    /// <summary>A float shift (finite), or a uint8 zero-point within the qtype's codes.</summary>
    internal static void Shift(StateDict source, string key, Tensor shift, QType qtype)
    {
        if (shift.dtype == ScalarType.Byte)
        {
            int max = qtype.Info().MaxCode;
            Check(source, key, shift, t => t.gt(max), $"a {qtype.QuantoName()} zero-point must be in [0, {max}]");
            return;
        }
        Check(source, key, shift, t => t.isfinite().logical_not(), "a shift must be finite");
    }

    /// <summary>8-bit float codes: no NaN or infinity (int8 codes are all valid).</summary>
    internal static void Codes(StateDict source, string key, Tensor codes, QType qtype)
    {
        if (!qtype.Info().IsFloat) return;
        Check(source, key, codes, t => t.isfinite().logical_not(), $"{qtype.QuantoName()} codes must be finite");
    }

    /// <summary>A float tensor that must be finite (a bias).</summary>
    internal static void Finite(StateDict source, string key, Tensor values) =>
        Check(source, key, values, t => t.isfinite().logical_not(), "it must be finite");

    /// <summary>An activation scale: finite and positive (a divisor; 1.0 when not calibrated).</summary>
    internal static void ActivationScale(StateDict source, string key, Tensor scale) =>
        Check(source, key, scale, t => t.isfinite().logical_not().logical_or(t.le(0)),
            "an activation scale must be finite and positive");

    /// <summary>Finds the first element <paramref name="bad"/> marks, chunk by chunk, in float32.</summary>
    private static void Check(StateDict source, string key, Tensor values, Func<Tensor, Tensor> bad, string rule)
    {
        using var scope = NewDisposeScope();
        Tensor flat = values.reshape(-1);
        for (long start = 0; start < flat.shape[0]; start += Chunk)
        {
            long count = Math.Min(Chunk, flat.shape[0] - start);
            Tensor part = flat.narrow(0, start, count);
            Tensor asFloat = part.dtype == ScalarType.Byte ? part.to(ScalarType.Int32) : part.to(ScalarType.Float32);
            Tensor marks = bad(asFloat);
            if (!marks.any().item<bool>()) continue;
            long index = start + marks.nonzero()[0, 0].item<long>();
            string value = part.dtype == ScalarType.Byte
                ? flat[index].item<byte>().ToString(CultureInfo.InvariantCulture)
                : flat[index].to(ScalarType.Float32).item<float>().ToString("R", CultureInfo.InvariantCulture);
            throw new QuantoFormatException(source.Source,
                $"'{key}' holds {value} at flat index {index}: {rule}.");
        }
    }
}
