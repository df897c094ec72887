using ILGPU;

namespace Quanto.Kernels.Ilgpu.Kernels;

/// <summary>
/// W8A8: int8 activations x int8 weights with exact int32 accumulation (<see cref="Dp4a"/>), then
/// y[m, n] = acc * xScale * wScale[n]. x arrives as int words, each row padded on the host to whole 16-byte chunks
/// with zero codes, so the weight and x words line up. Launch as <see cref="ByteWeightKernel"/>.
/// </summary>
public static class W8A8Kernel
{
    /// <summary>The kernel (GEMV or GEMM from <typeparamref name="TTile"/>).</summary>
    /// <param name="x">Activation codes, (M, ChunksPerRow * 4) int words (four int8 codes each).</param>
    /// <param name="weight">Weight codes, (N, ChunksPerRow) chunks.</param>
    /// <param name="wScale">Weight scale per output feature, (N).</param>
    /// <param name="xScale">The activations' per-tensor scale.</param>
    /// <param name="y">Output, (M, N) float32.</param>
    /// <param name="shape">Sizes.</param>
    public static void Run<TTile>(
        ArrayView<int> x, ArrayView<Chunk16> weight, ArrayView<float> wScale, float xScale, ArrayView<float> y,
        LinearShape shape)
        where TTile : struct, IRowTile
    {
        const int WordsPerTile = Tiling.TileK / 4;
        int rows = default(TTile).Rows;
        ArrayView<int> tile = SharedMemory.Allocate<int>(default(TTile).Rows * WordsPerTile);
        ArrayView<int> partial = SharedMemory.Allocate<int>(default(TTile).Rows * Tiling.GroupThreads);
        int slice = Group.IdxX / Tiling.LanesPerRow;
        int lane = Group.IdxX % Tiling.LanesPerRow;
        int n = Grid.IdxX * Tiling.RowsPerGroup + slice;
        int m0 = Grid.IdxY * rows;
        var acc = default(IntAcc);

        for (int k0 = 0; k0 < shape.PaddedK; k0 += Tiling.TileK)
        {
            GroupOps.LoadTile(x, tile, rows, m0, k0, shape);
            int firstChunk = k0 / Chunk16.Bytes;
            int chunks = IntrinsicMath.Min(Tiling.TileK / Chunk16.Bytes, shape.ChunksPerRow - firstChunk);
            if (n < shape.N)
            {
                long rowStart = (long)n * shape.ChunksPerRow + firstChunk;
                for (int c = lane; c < chunks; c += Tiling.LanesPerRow)
                {
                    Chunk16 chunk = weight[rowStart + c];
                    int at = c * 4;
                    acc.Add((int)chunk.X, tile, at, rows);
                    acc.Add((int)chunk.Y, tile, at + 1, rows);
                    acc.Add((int)chunk.Z, tile, at + 2, rows);
                    acc.Add((int)chunk.W, tile, at + 3, rows);
                }
            }
            Group.Barrier();
        }

        acc.Store(partial, rows);
        GroupOps.ReduceSlices(partial, rows, lane);
        int m = m0 + lane;
        if (lane < rows && n < shape.N && m < shape.M)
        {
            int total = partial[lane * Tiling.GroupThreads + slice * Tiling.LanesPerRow];
            y[(long)m * shape.N + n] = total * xScale * wScale[n];
        }
    }

    /// <summary>The plain C# reference: the exact int32 sums (before scaling), (M, N).</summary>
    public static void ReferenceInt32(ReadOnlySpan<sbyte> x, ReadOnlySpan<sbyte> weight, Span<int> acc, int m, int n,
        int k)
    {
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                int sum = 0;
                for (int t = 0; t < k; t++) sum += x[i * k + t] * weight[j * k + t];
                acc[i * n + j] = sum;
            }
        }
    }
}
