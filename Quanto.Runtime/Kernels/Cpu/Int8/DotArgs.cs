using System.Runtime.InteropServices;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// The arguments of one int8-activation kernel call: one panel of 16 weight columns against <see cref="Tiles"/>
/// consecutive tiles of R activation rows (R is the kernel's own constant), every group; row r of tile t goes to
/// Output + (t * R + r) * OutputStride, plus the panel's 16 biases when <see cref="Bias"/> is set. The layout is
/// fixed (sequential, offsets in the comments) because assembled kernels read it by offset (see Jit/DotAssembler.cs).
/// </summary>
/// <remarks>
/// Activations of a tile are interleaved by row in steps of four inputs: bytes [4R q, 4R q + 4R) hold inputs
/// 4q..4q+3 of rows 0..R-1, so that a kernel reads every row's next four codes from one pointer. Block scales and
/// corrections are [block][row], group sums [group][row]; a tile's data follows the previous tile's in every array, so
/// a kernel walks from one tile to the next by continuing its pointers.
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct DotArgs
{
    /// <summary>Offset 0: the panel's first unit.</summary>
    public byte* Weights;

    /// <summary>Offset 8: the panel's scales, 16 per group.</summary>
    public float* Scales;

    /// <summary>Offset 16: the panel's shifts, 16 per group (2/4-bit), else null.</summary>
    public float* Shifts;

    /// <summary>Offset 24: the tile's interleaved codes.</summary>
    public sbyte* X;

    /// <summary>Offset 32: the tile's scale per (block, row).</summary>
    public float* XScales;

    /// <summary>Offset 40: 128 * sum of the codes per (block, row) (qint8 weights), else null.</summary>
    public int* XCorrections;

    /// <summary>Offset 48: the dequantized activation sum per (group, row) (2/4-bit weights), else null.</summary>
    public float* XSums;

    /// <summary>Offset 56: where row 0 of the first tile goes (16 floats per row).</summary>
    public float* Output;

    /// <summary>Offset 64: groups per row.</summary>
    public int Groups;

    /// <summary>Offset 68: activation blocks per group.</summary>
    public int BlocksPerGroup;

    /// <summary>Offset 72: 64-byte units per block.</summary>
    public int UnitsPerBlock;

    /// <summary>Offset 76: rows in the tile (R; the managed kernels read it, assembled ones are built for one).</summary>
    public int Rows;

    /// <summary>Offset 80: tiles to run.</summary>
    public int Tiles;

    /// <summary>Offset 88: floats between output rows.</summary>
    public long OutputStride;

    /// <summary>Offset 96: the panel's 16 biases, or null.</summary>
    public float* Bias;

    public const int WeightsOffset = 0, ScalesOffset = 8, ShiftsOffset = 16, XOffset = 24, XScalesOffset = 32;
    public const int XCorrectionsOffset = 40, XSumsOffset = 48, OutputOffset = 56, GroupsOffset = 64;
    public const int BlocksPerGroupOffset = 68, UnitsPerBlockOffset = 72, RowsOffset = 76, TilesOffset = 80;
    public const int OutputStrideOffset = 88, BiasOffset = 96;
}
