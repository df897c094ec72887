using System.Runtime.InteropServices;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// The arguments of one bf16 GEMM micro-kernel call (<see cref="Jit.Bf16GemmAssembler"/>): a block of P panels
/// (P * 16 output columns) of decoded weights for one run of inputs (<see cref="Bf16Panels"/>), against
/// <see cref="Tiles"/> consecutive tiles of R activation rows (R and P are the kernel's constants). Per kernel group
/// the float32 sums are added to the accumulators in memory as acc += sum * scale (- shift * xSum). The layout is
/// fixed (sequential, offsets in the comments) because the assembled kernels read it by offset.
/// </summary>
/// <remarks>
/// Weights: per input pair q (inputs 2q, 2q + 1) and panel p, 64 bytes: for column c the bf16 codes of input 2q
/// (word 2c) and 2q + 1 (word 2c + 1), so that vdpbf16ps with one row's broadcast pair adds both products per column.
/// Activations: bf16 rows <see cref="XStride"/> bytes apart, in the same input order. Accumulators: rows of
/// <see cref="AccRowFloats"/> floats, column p * 16 + c.
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct Bf16GemmArgs
{
    /// <summary>Floats between accumulator rows (four panels).</summary>
    public const int AccRowFloats = 64;

    /// <summary>Offset 0: decoded weights, [group][pair][panel] x 64 bytes.</summary>
    public ushort* Weights;

    /// <summary>Offset 8: scales, [group][panel] x 16 floats.</summary>
    public float* Scales;

    /// <summary>Offset 16: shifts in the scales' layout (2/4-bit weights), else null.</summary>
    public float* Shifts;

    /// <summary>Offset 24: row 0 of the first tile at the block's first input.</summary>
    public ushort* X;

    /// <summary>Offset 32: bytes between activation rows.</summary>
    public long XStride;

    /// <summary>Offset 40: per (group, row) the sum of the group's bf16 activations (with <see cref="Shifts"/>), at the
    /// first tile's row 0, rows 4 bytes apart.</summary>
    public float* XSums;

    /// <summary>Offset 48: bytes between the groups of <see cref="XSums"/>.</summary>
    public long XSumsGroupStride;

    /// <summary>Offset 56: the first tile's row 0 of the accumulators.</summary>
    public float* Acc;

    /// <summary>Offset 64: groups in the block.</summary>
    public int Groups;

    /// <summary>Offset 68: input pairs per group (even).</summary>
    public int PairsPerGroup;

    /// <summary>Offset 72: tiles to run.</summary>
    public int Tiles;

    public const int WeightsOffset = 0, ScalesOffset = 8, ShiftsOffset = 16, XOffset = 24, XStrideOffset = 32;
    public const int XSumsOffset = 40, XSumsGroupStrideOffset = 48, AccOffset = 56, GroupsOffset = 64;
    public const int PairsPerGroupOffset = 68, TilesOffset = 72;
}
