using System.Runtime.CompilerServices;
using ILGPU;

namespace Quanto.Kernels.Ilgpu.Kernels;

/// <summary>
/// The group-wide steps every kernel shares: staging a tile of x in shared memory (coalesced: consecutive threads read
/// consecutive elements) and adding up the partial sums of each 32-thread slice. Both end with a barrier, and every
/// thread of the group must call them (no thread may return early).
/// </summary>
public static class GroupOps
{
    /// <summary>Reads chunk word 0..3 without indexing into the struct (which would force it into local memory).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Word(Chunk16 chunk, int index) =>
        index == 0 ? chunk.X : index == 1 ? chunk.Y : index == 2 ? chunk.Z : chunk.W;

    /// <summary>
    /// Copies x[m0 + r, k0 + i] for r &lt; <paramref name="rows"/>, i &lt; min(TileK, paddedK - k0) into
    /// tile[r * TileK + i]; zero outside x (rows past M, columns past K), so padded weight codes meet zeros.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadTile(ArrayView<float> x, ArrayView<float> tile, int rows, int m0, int k0, LinearShape shape)
    {
        int count = IntrinsicMath.Min(Tiling.TileK, shape.PaddedK - k0);
        for (int r = 0; r < rows; r++)
        {
            int m = m0 + r;
            for (int i = Group.IdxX; i < count; i += Tiling.GroupThreads)
            {
                int k = k0 + i;
                tile[r * Tiling.TileK + i] = m < shape.M && k < shape.K ? x[(long)m * shape.K + k] : 0f;
            }
        }
        Group.Barrier();
    }

    /// <summary>
    /// Copies int8 codes of x, four per int (rows already padded to whole chunks on the host), for words
    /// [k0 / 4, k0 / 4 + TileK / 4) of rows m0 .. m0 + rows - 1; zero past M.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadTile(ArrayView<int> x, ArrayView<int> tile, int rows, int m0, int k0, LinearShape shape)
    {
        int wordsPerRow = shape.ChunksPerRow * 4;
        int firstWord = k0 / 4;
        int count = IntrinsicMath.Min(Tiling.TileK / 4, wordsPerRow - firstWord);
        for (int r = 0; r < rows; r++)
        {
            int m = m0 + r;
            for (int i = Group.IdxX; i < count; i += Tiling.GroupThreads)
                tile[r * (Tiling.TileK / 4) + i] = m < shape.M ? x[(long)m * wordsPerRow + firstWord + i] : 0;
        }
        Group.Barrier();
    }

    /// <summary>
    /// Adds the <see cref="Tiling.LanesPerRow"/> partial sums of every slice, for each of <paramref name="rows"/> rows.
    /// On return partial[r * GroupThreads + slice * LanesPerRow] holds the total of row r of that slice.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ReduceSlices(ArrayView<float> partial, int rows, int lane)
    {
        Group.Barrier();
        for (int stride = Tiling.LanesPerRow / 2; stride > 0; stride >>= 1)
        {
            if (lane < stride)
            {
                for (int r = 0; r < rows; r++)
                {
                    int at = r * Tiling.GroupThreads + Group.IdxX;
                    partial[at] += partial[at + stride];
                }
            }
            Group.Barrier();
        }
    }

    /// <summary>Integer twin of <see cref="ReduceSlices(ArrayView{float}, int, int)"/> (exact int32 sums).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ReduceSlices(ArrayView<int> partial, int rows, int lane)
    {
        Group.Barrier();
        for (int stride = Tiling.LanesPerRow / 2; stride > 0; stride >>= 1)
        {
            if (lane < stride)
            {
                for (int r = 0; r < rows; r++)
                {
                    int at = r * Tiling.GroupThreads + Group.IdxX;
                    partial[at] += partial[at + stride];
                }
            }
            Group.Barrier();
        }
    }
}
