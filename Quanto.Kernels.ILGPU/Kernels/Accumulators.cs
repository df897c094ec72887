using System.Runtime.CompilerServices;
using ILGPU;

namespace Quanto.Kernels.Ilgpu.Kernels;

/// <summary>
/// fp32 partial sums of one thread for up to <see cref="Tiling.GemmRows"/> rows of x, held in named fields (registers)
/// rather than an array, which ILGPU would place in local memory.
/// </summary>
public struct FloatAcc
{
    /// <summary>Partial sum of row 0..3.</summary>
    public float R0, R1, R2, R3;

    /// <summary>Adds w * x[r, i] for every row r &lt; rows; x is the shared tile (rows of <see cref="Tiling.TileK"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(float w, ArrayView<float> tile, int i, int rows)
    {
        R0 += w * tile[i];
        if (rows > 1)
        {
            R1 += w * tile[Tiling.TileK + i];
            R2 += w * tile[2 * Tiling.TileK + i];
            R3 += w * tile[3 * Tiling.TileK + i];
        }
    }

    /// <summary>Writes the partial sums to partial[r * GroupThreads + Group.IdxX].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void Store(ArrayView<float> partial, int rows)
    {
        int at = Group.IdxX;
        partial[at] = R0;
        if (rows > 1)
        {
            partial[Tiling.GroupThreads + at] = R1;
            partial[2 * Tiling.GroupThreads + at] = R2;
            partial[3 * Tiling.GroupThreads + at] = R3;
        }
    }
}

/// <summary>Exact int32 partial sums of one thread for up to <see cref="Tiling.GemmRows"/> rows (W8A8).</summary>
public struct IntAcc
{
    /// <summary>Partial sum of row 0..3.</summary>
    public int R0, R1, R2, R3;

    /// <summary>Adds the 4-way int8 dot product of weight word <paramref name="w"/> with x word i of each row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(int w, ArrayView<int> tile, int i, int rows)
    {
        const int Words = Tiling.TileK / 4;
        R0 = Dp4a.Dot(w, tile[i], R0);
        if (rows > 1)
        {
            R1 = Dp4a.Dot(w, tile[Words + i], R1);
            R2 = Dp4a.Dot(w, tile[2 * Words + i], R2);
            R3 = Dp4a.Dot(w, tile[3 * Words + i], R3);
        }
    }

    /// <summary>Writes the partial sums to partial[r * GroupThreads + Group.IdxX].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void Store(ArrayView<int> partial, int rows)
    {
        int at = Group.IdxX;
        partial[at] = R0;
        if (rows > 1)
        {
            partial[Tiling.GroupThreads + at] = R1;
            partial[2 * Tiling.GroupThreads + at] = R2;
            partial[3 * Tiling.GroupThreads + at] = R3;
        }
    }
}
