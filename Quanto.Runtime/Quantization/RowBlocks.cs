using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>
/// Runs row-independent tensor work in blocks of rows. Each block's temporaries stay near 1M elements: a fresh
/// multi-megabyte libtorch allocation is page-faulted in on every op (measured here: 150-250 ms for one 64 MB
/// temporary vs 2-4 ms for the same work in 4 MB blocks), and peak memory stays bounded on large weights.
/// </summary>
internal static class RowBlocks
{
    private const long ElementsPerBlock = 1L << 20;

    /// <summary>Calls <paramref name="body"/>(first row, row count) for consecutive blocks covering
    /// <paramref name="rows"/> rows of <paramref name="rowLength"/> elements, each inside its own dispose scope.</summary>
    internal static void ForEach(long rows, long rowLength, Action<long, long> body)
    {
        long perBlock = Math.Max(1, ElementsPerBlock / Math.Max(1, rowLength));
        for (long start = 0; start < rows; start += perBlock)
        {
            using var scope = NewDisposeScope();
            body(start, Math.Min(perBlock, rows - start));
        }
    }
}
