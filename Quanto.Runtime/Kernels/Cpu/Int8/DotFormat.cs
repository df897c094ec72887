namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// The weight formats of the int8-activation kernels and the 64-byte unit each stores: 16 output columns (one
/// panel) by <see cref="DotFormats.UnitK"/> inputs. Byte 4j + i of a unit belongs to column j, so that vpdpbusd, which
/// sums four adjacent byte products per 32-bit lane, gives lane j the dot product of column j with four activations
/// broadcast to every lane. Weights are the unsigned operand (codes 0..255), activations the signed one.
/// </summary>
internal enum DotFormat
{
    /// <summary>qint8, stored as code + 128 (8 bits per weight; the kernel subtracts 128 * sum(x)). Unit: 4 inputs,
    /// byte 4j + i = column j, input i.</summary>
    Int8,

    /// <summary>qint4 codes 0..15 (4 bits per weight). Unit: 8 inputs, byte 4j + i = input i | input (4 + i) &lt;&lt; 4
    /// of column j: masking the low nibbles gives inputs 0..3, shifting by 4 inputs 4..7.</summary>
    Int4,

    /// <summary>qint2 codes 0..3 (2 bits per weight). Unit: 16 inputs, byte 4j + i = inputs i, 4 + i, 8 + i, 12 + i
    /// of column j in bits 0-1, 2-3, 4-5, 6-7.</summary>
    Int2,
}

/// <summary>Geometry of each <see cref="DotFormat"/>, in one place.</summary>
internal static unsafe class DotFormats
{
    /// <summary>Output columns per panel (one 512-bit register of int32 lanes).</summary>
    public const int PanelColumns = 16;

    /// <summary>Bytes per unit.</summary>
    public const int UnitBytes = 64;

    /// <summary>Groups are padded to a multiple of this many inputs (the Int8 mode's activation block).</summary>
    public const int GroupAlign = 32;

    /// <summary>Inputs per unit.</summary>
    public static int UnitK(this DotFormat format) => format switch
    {
        DotFormat.Int8 => 4,
        DotFormat.Int4 => 8,
        _ => 16,
    };

    /// <summary>Stored bits per weight.</summary>
    public static int Bits(this DotFormat format) => format switch
    {
        DotFormat.Int8 => 8,
        DotFormat.Int4 => 4,
        _ => 2,
    };

    /// <summary>True when the codes are signed (stored offset by 128, corrected with the activation sums).</summary>
    public static bool IsSigned(this DotFormat format) => format == DotFormat.Int8;

    /// <summary>The code of column <paramref name="column"/> (0..15), input <paramref name="input"/> (0..UnitK-1) of
    /// a unit, as stored (Int8: offset by 128).</summary>
    public static int Code(this DotFormat format, byte* unit, int column, int input) => format switch
    {
        DotFormat.Int8 => unit[4 * column + input],
        DotFormat.Int4 => (unit[4 * column + (input & 3)] >> (4 * (input >> 2))) & 15,
        _ => (unit[4 * column + (input & 3)] >> (2 * (input >> 2))) & 3,
    };

    /// <summary>
    /// For the bf16 kernels, the input pairs (offsets inside a unit) that each bf16 code plane of a unit holds, in
    /// the order the kernels decode them: 16-bit word 2j of the unit (bytes 4j, 4j + 1) gives a plane's first input
    /// and word 2j + 1 (bytes 4j + 2, 4j + 3) its second, so every plane pairs input i with input i + 2.
    /// </summary>
    public static ReadOnlySpan<byte> Bf16Pairs(this DotFormat format) => format switch
    {
        DotFormat.Int8 => [0, 2, 1, 3],
        DotFormat.Int4 => [0, 2, 1, 3, 4, 6, 5, 7],
        _ => [0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15],
    };
}
