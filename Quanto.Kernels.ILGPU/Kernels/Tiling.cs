namespace Quanto.Kernels.Ilgpu.Kernels;

/// <summary>
/// The launch geometry every kernel shares. A group of <see cref="GroupThreads"/> threads computes
/// <see cref="RowsPerGroup"/> output features: each feature gets a slice of <see cref="LanesPerRow"/> consecutive threads
/// (one warp on NVIDIA), whose lanes read consecutive 16-byte chunks of that weight row, so one slice step reads 512
/// contiguous bytes (fully coalesced). x is staged in shared memory in tiles of <see cref="TileK"/> elements and shared by
/// the four slices. The partial sums of a slice are added in shared memory, not with warp shuffles, so the same code is
/// correct on any warp size (the CPU accelerator simulates 4-wide warps; OpenCL devices may lack sub-group shuffles).
/// </summary>
public static class Tiling
{
    /// <summary>Threads per group.</summary>
    public const int GroupThreads = 128;

    /// <summary>Threads that share one output feature.</summary>
    public const int LanesPerRow = 32;

    /// <summary>Output features per group.</summary>
    public const int RowsPerGroup = GroupThreads / LanesPerRow;

    /// <summary>
    /// Elements of x per shared-memory tile: a multiple of every chunk's code count (16, 32, 64) and large enough that
    /// all 32 lanes of a slice have work even for int2 (32 lanes x 64 codes = 2048).
    /// </summary>
    public const int TileK = 2048;

    /// <summary>Rows of x a GEMM group computes at once (each decoded weight is used this many times).</summary>
    public const int GemmRows = 4;

    /// <summary>Groups needed along the output features.</summary>
    public static int GroupsFor(int outFeatures) => (outFeatures + RowsPerGroup - 1) / RowsPerGroup;
}

/// <summary>How many rows of x one group computes: 1 (GEMV) or <see cref="Tiling.GemmRows"/> (GEMM). A generic struct
/// argument so that ILGPU specialises each kernel and folds the row loops away.</summary>
public interface IRowTile
{
    /// <summary>Rows of x per group.</summary>
    int Rows { get; }
}

/// <summary>One row of x per group: the GEMV (decode, batch 1) shape.</summary>
public readonly struct GemvTile : IRowTile
{
    /// <inheritdoc />
    public int Rows => 1;
}

/// <summary><see cref="Tiling.GemmRows"/> rows of x per group: the GEMM (prefill, batch) shape.</summary>
public readonly struct GemmTile : IRowTile
{
    /// <inheritdoc />
    public int Rows => Tiling.GemmRows;
}
