using System.Runtime.CompilerServices;
using ILGPU;

namespace Quanto.Kernels.Ilgpu.Kernels;

/// <summary>
/// Weight-only matmul for 8-bit weights with one scale per output feature (qint8, float8 e4m3fn, float8 e5m2):
/// y[m, n] = scale[n] * Σ_k x[m, k] * decode(W[n, k]), fp32 accumulation. Launch: grid (GroupsFor(N), ceil(M / rows)),
/// group <see cref="Tiling.GroupThreads"/>. Each lane reads one 16-byte chunk (16 codes) per step.
/// </summary>
public static class ByteWeightKernel
{
    /// <summary>Codes in one 16-byte chunk.</summary>
    public const int CodesPerChunk = 16;

    /// <summary>The kernel. <typeparamref name="TDecoder"/> picks the format, <typeparamref name="TTile"/> GEMV or
    /// GEMM.</summary>
    /// <param name="x">Activations, (M, K) float32, row-major.</param>
    /// <param name="weight">Codes, (N, ChunksPerRow) chunks.</param>
    /// <param name="scale">Scale per output feature, (N).</param>
    /// <param name="y">Output, (M, N) float32.</param>
    /// <param name="shape">Sizes.</param>
    public static void Run<TDecoder, TTile>(
        ArrayView<float> x, ArrayView<Chunk16> weight, ArrayView<float> scale, ArrayView<float> y, LinearShape shape)
        where TDecoder : struct, IByteDecoder
        where TTile : struct, IRowTile
    {
        int rows = default(TTile).Rows;
        ArrayView<float> tile = SharedMemory.Allocate<float>(default(TTile).Rows * Tiling.TileK);
        ArrayView<float> partial = SharedMemory.Allocate<float>(default(TTile).Rows * Tiling.GroupThreads);
        int slice = Group.IdxX / Tiling.LanesPerRow;
        int lane = Group.IdxX % Tiling.LanesPerRow;
        int n = Grid.IdxX * Tiling.RowsPerGroup + slice;
        int m0 = Grid.IdxY * rows;
        TDecoder decoder = default;
        var acc = default(FloatAcc);

        for (int k0 = 0; k0 < shape.PaddedK; k0 += Tiling.TileK)
        {
            GroupOps.LoadTile(x, tile, rows, m0, k0, shape);
            int firstChunk = k0 / CodesPerChunk;
            int chunks = IntrinsicMath.Min(Tiling.TileK / CodesPerChunk, shape.ChunksPerRow - firstChunk);
            if (n < shape.N)
            {
                long rowStart = (long)n * shape.ChunksPerRow + firstChunk;
                for (int c = lane; c < chunks; c += Tiling.LanesPerRow)
                {
                    Chunk16 chunk = weight[rowStart + c];
                    int at = c * CodesPerChunk;
                    AddWord(ref acc, decoder, chunk.X, tile, at, rows);
                    AddWord(ref acc, decoder, chunk.Y, tile, at + 4, rows);
                    AddWord(ref acc, decoder, chunk.Z, tile, at + 8, rows);
                    AddWord(ref acc, decoder, chunk.W, tile, at + 12, rows);
                }
            }
            // The next tile overwrites x: wait until every slice is done with this one.
            Group.Barrier();
        }

        acc.Store(partial, rows);
        GroupOps.ReduceSlices(partial, rows, lane);
        int m = m0 + lane;
        if (lane < rows && n < shape.N && m < shape.M)
            y[(long)m * shape.N + n] = partial[lane * Tiling.GroupThreads + slice * Tiling.LanesPerRow] * scale[n];
    }

    // Written out (not a loop): ILGPU does not unroll it, and the four decodes are independent work for the GPU.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddWord<TDecoder>(ref FloatAcc acc, TDecoder decoder, uint bits, ArrayView<float> tile, int at,
        int rows)
        where TDecoder : struct, IByteDecoder
    {
        acc.Add(decoder.Decode(bits & 0xFF), tile, at, rows);
        acc.Add(decoder.Decode((bits >> 8) & 0xFF), tile, at + 1, rows);
        acc.Add(decoder.Decode((bits >> 16) & 0xFF), tile, at + 2, rows);
        acc.Add(decoder.Decode(bits >> 24), tile, at + 3, rows);
    }

    /// <summary>The plain C# reference of the same math on the same layout (used by the tests).</summary>
    public static void Reference<TDecoder>(
        ReadOnlySpan<float> x, ReadOnlySpan<byte> weight, ReadOnlySpan<float> scale, Span<float> y, LinearShape shape)
        where TDecoder : struct, IByteDecoder
    {
        TDecoder decoder = default;
        int rowBytes = shape.ChunksPerRow * Chunk16.Bytes;
        for (int m = 0; m < shape.M; m++)
        {
            for (int n = 0; n < shape.N; n++)
            {
                float sum = 0;
                for (int k = 0; k < shape.K; k++) sum += x[m * shape.K + k] * decoder.Decode(weight[n * rowBytes + k]);
                y[m * shape.N + n] = sum * scale[n];
            }
        }
    }
}
