using System.Runtime.CompilerServices;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// One float32 weight-only GEMM over the thread pool (qint8/qint4/qint2 weights, float32 activations): chunk i is
/// block i of four panels (<see cref="BlockColumns"/> output columns). Per run of <see cref="BlockInputs"/> inputs
/// the block is decoded once to float32 (<see cref="FloatPanels"/>: the dequantized weights, exactly as the other
/// weight-only kernels compute them), then the micro-kernel (<see cref="FloatGemmMicro"/>) runs it against every
/// activation row, six rows per tile, adding into float32 accumulators; at the end bias, then y. Rows go in blocks
/// of <see cref="RowBlock"/> so that a block's activations stay in L2. On the Vector512 path a tile is 6 rows x 64
/// columns (<see cref="FloatGemmMicro"/>), on Vector256 (AVX2 + FMA) 6 rows x 16 columns, four strips per block,
/// each strip against every row before the next (<see cref="FloatGemmMicro256"/>).
/// </summary>
/// <param name="weight">The weight in the Dot layout.</param>
/// <param name="x">The activations in the weight's padded input order.</param>
/// <param name="y">Rows x N float32 outputs.</param>
/// <param name="bias">N biases, or null.</param>
/// <param name="path">Vector512 or Vector256; the caller checks <see cref="FloatPanels.Runs"/>.</param>
internal sealed unsafe class FloatGemmJob(DotWeight weight, FloatRows x, float* y, float* bias, CpuKernelPath path)
    : CpuJob
{
    /// <summary>Output columns per block (four panels, four zmm per row).</summary>
    public const int BlockColumns = 64;

    /// <summary>Panels per block.</summary>
    public const int BlockPanels = BlockColumns / DotFormats.PanelColumns;

    /// <summary>Inputs decoded per block: 64 KiB of floats for 64 columns, read from L2 by every tile (128 and 512
    /// ran within noise of 256 at m = 16 and 128, one thread).</summary>
    public const int BlockInputs = 256;

    /// <summary>Activation rows per pass over the weights (a multiple of the tile height): 120 rows x 256 inputs
    /// = 120 KiB of activations per block, in L2 with the decoded block and the accumulators.</summary>
    public const int RowBlock = 120;

    private readonly int _unitsPerBlock = Math.Max(1, BlockInputs / weight.Format.UnitK());

    private readonly bool _wide = path == CpuKernelPath.Vector512;

    /// <summary>Chunks to run.</summary>
    public int Blocks { get; } = (weight.Panels + BlockPanels - 1) / BlockPanels;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Run(int chunk)
    {
        int panel0 = chunk * BlockPanels;
        int panels = Math.Min(BlockPanels, weight.Panels - panel0);
        int unitK = weight.Format.UnitK();
        int rows = x.Rows, rowBlock = Math.Min(rows, RowBlock);
        long weightFloats = (long)_unitsPerBlock * unitK * BlockColumns;
        using ScratchMemory.Lease lease = ScratchMemory.Rent((weightFloats + (long)rowBlock * BlockColumns) * sizeof(float),
            clear: false);
        var decoded = (float*)lease.Pointer;
        float* acc = decoded + weightFloats;
        // A last block of fewer panels: its missing columns stay zero (never written by the decoder).
        if (panels < BlockPanels) new Span<float>(decoded, (int)weightFloats).Clear();
        int totalUnits = weight.Groups * weight.UnitsPerGroup;
        for (int r0 = 0; r0 < rows; r0 += rowBlock)
        {
            int r1 = Math.Min(rows, r0 + rowBlock);
            new Span<float>(acc, (r1 - r0) * BlockColumns).Clear();
            for (int unit0 = 0; unit0 < totalUnits; unit0 += _unitsPerBlock)
            {
                int units = Math.Min(_unitsPerBlock, totalUnits - unit0);
                FloatPanels.Decode(weight, panel0, panels, unit0, units, decoded, path);
                int count = units * unitK;
                float* xBlock = x.Data + (long)unit0 * unitK;
                if (_wide)
                {
                    for (int r = r0; r < r1; r += FloatGemmMicro.MaxRows)
                    {
                        FloatGemmMicro.Run(Math.Min(FloatGemmMicro.MaxRows, r1 - r), xBlock + (long)r * x.Stride,
                            x.Stride, decoded, count, acc + (long)(r - r0) * BlockColumns);
                    }
                    continue;
                }
                // AVX2: one 16-column strip at a time against every row, so the strip (16 KiB) stays in L1.
                for (int strip = 0; strip < BlockColumns; strip += FloatGemmMicro256.StripColumns)
                {
                    for (int r = r0; r < r1; r += FloatGemmMicro.MaxRows)
                    {
                        FloatGemmMicro256.Run(Math.Min(FloatGemmMicro.MaxRows, r1 - r), xBlock + (long)r * x.Stride,
                            x.Stride, decoded + strip, count, acc + (long)(r - r0) * BlockColumns + strip);
                    }
                }
            }
            Store(acc, panel0, r0, r1);
        }
    }

    private void Store(float* acc, int panel0, int r0, int r1)
    {
        int col0 = panel0 * DotFormats.PanelColumns;
        int cols = Math.Min(BlockColumns, weight.N - col0);
        for (int r = r0; r < r1; r++)
        {
            float* row = acc + (long)(r - r0) * BlockColumns;
            float* target = y + (long)r * weight.N + col0;
            if (bias == null) new ReadOnlySpan<float>(row, cols).CopyTo(new Span<float>(target, cols));
            else for (int c = 0; c < cols; c++) target[c] = row[c] + bias[col0 + c];
        }
    }
}
