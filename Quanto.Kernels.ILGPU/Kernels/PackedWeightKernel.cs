using ILGPU;

namespace Quanto.Kernels.Ilgpu.Kernels;

/// <summary>Code width of a packed (group-wise affine) format, as a generic struct so kernels are specialised.</summary>
public interface IPackedBits
{
    /// <summary>Bits per code: 4 or 2.</summary>
    int Bits { get; }
}

/// <summary>qint4: 4 bits per code, 32 codes per 16-byte chunk (4.0 bits per weight before scale and shift).</summary>
public readonly struct Int4Bits : IPackedBits
{
    /// <inheritdoc />
    public int Bits => 4;
}

/// <summary>qint2: 2 bits per code, 64 codes per 16-byte chunk (2.0 bits per weight before scale and shift).</summary>
public readonly struct Int2Bits : IPackedBits
{
    /// <inheritdoc />
    public int Bits => 2;
}

/// <summary>
/// Weight-only matmul for group-wise affine 2/4-bit weights in the kernel layout (<see cref="Layout.KernelLayout"/>):
/// codes of a row consecutive, least significant first. w = q * scale[g] - shift[g] for the group g = k / GroupSize of
/// the row; y[m, n] = Σ_k x[m, k] * w[n, k], fp32 accumulation. Launch as <see cref="ByteWeightKernel"/>.
/// </summary>
public static class PackedWeightKernel
{
    /// <summary>The kernel (format from <typeparamref name="TBits"/>, GEMV or GEMM from <typeparamref name="TTile"/>).</summary>
    /// <param name="x">Activations, (M, K) float32.</param>
    /// <param name="weight">Packed codes, (N, ChunksPerRow) chunks.</param>
    /// <param name="scale">Scale per group, (N, GroupsPerRow).</param>
    /// <param name="shift">Float shift per group, (N, GroupsPerRow) (a zero-point is converted at Prepare).</param>
    /// <param name="y">Output, (M, N) float32.</param>
    /// <param name="shape">Sizes.</param>
    public static void Run<TBits, TTile>(
        ArrayView<float> x, ArrayView<Chunk16> weight, ArrayView<float> scale, ArrayView<float> shift,
        ArrayView<float> y, LinearShape shape)
        where TBits : struct, IPackedBits
        where TTile : struct, IRowTile
    {
        int rows = default(TTile).Rows;
        int bits = default(TBits).Bits;
        int codesPerWord = 32 / bits;
        int codesPerChunk = 4 * codesPerWord;
        uint mask = (1u << bits) - 1;
        ArrayView<float> tile = SharedMemory.Allocate<float>(default(TTile).Rows * Tiling.TileK);
        ArrayView<float> partial = SharedMemory.Allocate<float>(default(TTile).Rows * Tiling.GroupThreads);
        int slice = Group.IdxX / Tiling.LanesPerRow;
        int lane = Group.IdxX % Tiling.LanesPerRow;
        int n = Grid.IdxX * Tiling.RowsPerGroup + slice;
        int m0 = Grid.IdxY * rows;
        var acc = default(FloatAcc);

        for (int k0 = 0; k0 < shape.PaddedK; k0 += Tiling.TileK)
        {
            GroupOps.LoadTile(x, tile, rows, m0, k0, shape);
            int firstChunk = k0 / codesPerChunk;
            int chunks = IntrinsicMath.Min(Tiling.TileK / codesPerChunk, shape.ChunksPerRow - firstChunk);
            if (n < shape.N)
            {
                long rowStart = (long)n * shape.ChunksPerRow + firstChunk;
                long groupBase = (long)n * shape.GroupsPerRow;
                for (int c = lane; c < chunks; c += Tiling.LanesPerRow)
                {
                    Chunk16 chunk = weight[rowStart + c];
                    int k = k0 + c * codesPerChunk;
                    // One division per chunk; group boundaries inside the chunk (groups of 8..32) are stepped over.
                    int group = k / shape.GroupSize;
                    int boundary = (group + 1) * shape.GroupSize;
                    float s = scale[groupBase + group];
                    float sh = shift[groupBase + group];
                    for (int word = 0; word < 4; word++)
                    {
                        uint packed = GroupOps.Word(chunk, word);
                        for (int j = 0; j < codesPerWord; j++, k++)
                        {
                            if (k == boundary && k < shape.K)
                            {
                                group++;
                                boundary += shape.GroupSize;
                                s = scale[groupBase + group];
                                sh = shift[groupBase + group];
                            }
                            float q = (packed >> (bits * j)) & mask;
                            acc.Add(q * s - sh, tile, k - k0, rows);
                        }
                    }
                }
            }
            Group.Barrier();
        }

        acc.Store(partial, rows);
        GroupOps.ReduceSlices(partial, rows, lane);
        int m = m0 + lane;
        if (lane < rows && n < shape.N && m < shape.M)
            y[(long)m * shape.N + n] = partial[lane * Tiling.GroupThreads + slice * Tiling.LanesPerRow];
    }

    /// <summary>The plain C# reference on the same layout (used by the tests).</summary>
    public static void Reference(int bits, ReadOnlySpan<float> x, ReadOnlySpan<byte> weight, ReadOnlySpan<float> scale,
        ReadOnlySpan<float> shift, Span<float> y, LinearShape shape)
    {
        int perByte = 8 / bits;
        int rowBytes = shape.ChunksPerRow * Chunk16.Bytes;
        int mask = (1 << bits) - 1;
        for (int m = 0; m < shape.M; m++)
        {
            for (int n = 0; n < shape.N; n++)
            {
                float sum = 0;
                for (int k = 0; k < shape.K; k++)
                {
                    int q = (weight[n * rowBytes + k / perByte] >> (bits * (k % perByte))) & mask;
                    int g = n * shape.GroupsPerRow + k / shape.GroupSize;
                    sum += x[m * shape.K + k] * (q * scale[g] - shift[g]);
                }
                y[m * shape.N + n] = sum;
            }
        }
    }
}
