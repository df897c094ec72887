using Quanto.Tensors;

namespace Quanto.Kernels.Cpu;

/// <summary>
/// The weight formats the CPU kernels run, with the block each is stored in after <see cref="CpuKernels.Prepare"/>.
/// A block is the unit one SIMD step decodes; rows (8-bit) or groups (2/4-bit) are padded with zero codes to whole
/// blocks so that no kernel has a tail loop (activations are padded with zeros to match).
/// </summary>
internal enum CpuWeightFormat
{
    /// <summary>qint8 per channel. Block: 64 codes in 64 bytes, unchanged order (8 bits per weight).</summary>
    Int8,

    /// <summary>qfloat8_e4m3fn per channel. Block as <see cref="Int8"/> (8 bits per weight).</summary>
    Fp8E4M3Fn,

    /// <summary>qfloat8_e5m2 per channel. Block as <see cref="Int8"/> (8 bits per weight).</summary>
    Fp8E5M2,

    /// <summary>qfloat8_e4m3fnuz per channel. Block as <see cref="Int8"/> (8 bits per weight).</summary>
    Fp8E4M3Fnuz,

    /// <summary>
    /// qint4 group-wise. Block: 32 codes in 16 bytes (4 bits per weight); byte i = q[i] | q[i + 16] &lt;&lt; 4, so one
    /// zero-extension of 16 bytes to 16 lanes gives codes 0..15 in the low nibbles and 16..31 in the high ones.
    /// </summary>
    Int4,

    /// <summary>
    /// qint2 group-wise. Block: 64 codes in 16 bytes (2 bits per weight); byte i = q[i] | q[i+16] &lt;&lt; 2 |
    /// q[i+32] &lt;&lt; 4 | q[i+48] &lt;&lt; 6.
    /// </summary>
    Int2,
}

/// <summary>Block geometry of each <see cref="CpuWeightFormat"/>, in one place.</summary>
internal static class CpuWeightFormats
{
    /// <summary>Stored bits per weight (excluding scales).</summary>
    public static int Bits(this CpuWeightFormat format) => format switch
    {
        CpuWeightFormat.Int4 => 4,
        CpuWeightFormat.Int2 => 2,
        _ => 8,
    };

    /// <summary>Weights per block.</summary>
    public static int BlockWeights(this CpuWeightFormat format) => format switch
    {
        CpuWeightFormat.Int4 => 32,
        _ => 64,
    };

    /// <summary>Bytes per block; BlockWeights * Bits / 8 (checked when a weight is prepared).</summary>
    public static int BlockBytes(this CpuWeightFormat format) => format switch
    {
        CpuWeightFormat.Int4 or CpuWeightFormat.Int2 => 16,
        _ => 64,
    };

    /// <summary>True for the group-wise affine formats (a shift term per group).</summary>
    public static bool IsAffine(this CpuWeightFormat format) =>
        format is CpuWeightFormat.Int4 or CpuWeightFormat.Int2;

    /// <summary>The format of a qtype, or null when the CPU kernels do not run it.</summary>
    public static CpuWeightFormat? Of(QType qtype) => qtype switch
    {
        QType.QInt8 => CpuWeightFormat.Int8,
        QType.QInt4 => CpuWeightFormat.Int4,
        QType.QInt2 => CpuWeightFormat.Int2,
        QType.QFloat8E4M3Fn => CpuWeightFormat.Fp8E4M3Fn,
        QType.QFloat8E5M2 => CpuWeightFormat.Fp8E5M2,
        QType.QFloat8E4M3Fnuz => CpuWeightFormat.Fp8E4M3Fnuz,
        _ => null,
    };

    /// <summary>
    /// Output rows, inputs per row and inputs per group of <paramref name="source"/> (the row length for 8-bit
    /// weights): the geometry every CPU layout starts from.
    /// </summary>
    /// <exception cref="NotSupportedException">A group crosses rows (the group size does not divide K).</exception>
    public static (int N, int K, int Group) Geometry(QuantizedWeight source)
    {
        int n = checked((int)source.Shape[0]);
        int k = checked((int)(source.NumberOfElements / source.Shape[0]));
        int group = source is WeightQBitsTensor bits ? bits.GroupSize : k;
        if (k % group != 0)
        {
            throw new NotSupportedException(
                $"The CPU kernels need groups inside rows: group size {group} does not divide the {k} input " +
                $"features of {source}.");
        }
        return (n, k, group);
    }
}
