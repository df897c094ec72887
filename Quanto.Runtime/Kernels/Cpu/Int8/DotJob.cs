using System.Runtime.CompilerServices;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// One int8-activation matmul over the thread pool: chunk i is a run of panels (16 output columns each), computed
/// for every activation tile. Tiles are taken in blocks of <see cref="TileBlock"/> so that a block's activations
/// (128 rows x K bytes) stay in L2 while each panel of weights, read once per block, stays in L1/L2 across its tiles;
/// one kernel call runs a panel against all whole tiles of a block, writing y directly (at K = 384 a 4 x 16 tile is
/// only about 200 cycles of arithmetic, so a call per tile would spend a large share on call setup and stores).
/// </summary>
internal sealed unsafe class DotJob(DotWeight weight, IDotActivations x, DotKernel kernel, float* y, float* bias,
    int panelsPerChunk) : CpuJob
{
    /// <summary>Tiles per activation block (with 4-row tiles, 128 rows).</summary>
    private const int TileBlock = 32;

    public int PanelsPerChunk { get; } = panelsPerChunk;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Run(int chunk)
    {
        int p0 = chunk * PanelsPerChunk, p1 = Math.Min(weight.Panels, p0 + PanelsPerChunk);
        int rows = x.TileRows;
        float* tile = stackalloc float[rows * DotFormats.PanelColumns];
        // Tiles whose every row is real; a padded last tile goes through the scratch tile like a partial panel.
        int wholeTiles = x.Rows / rows;
        DotArgs args = default;
        for (int t0 = 0; t0 < x.Tiles; t0 += TileBlock)
        {
            int t1 = Math.Min(x.Tiles, t0 + TileBlock), direct = Math.Clamp(wholeTiles - t0, 0, t1 - t0);
            for (int p = p0; p < p1; p++)
            {
                long groupScales = (long)p * weight.Groups * DotFormats.PanelColumns;
                args.Weights = weight.Codes + p * weight.PanelBytes;
                args.Scales = weight.Scales + groupScales;
                args.Shifts = weight.Shifts == null ? null : weight.Shifts + groupScales;
                int col0 = p * DotFormats.PanelColumns, cols = Math.Min(DotFormats.PanelColumns, weight.N - col0);
                int start = t0;
                if (cols == DotFormats.PanelColumns && direct > 0)
                {
                    // Whole tiles of a whole panel: straight into y, bias added by the kernel.
                    x.Bind(ref args, t0);
                    args.Tiles = direct;
                    args.Output = y + (long)t0 * rows * weight.N + col0;
                    args.OutputStride = weight.N;
                    args.Bias = bias == null ? null : bias + col0;
                    kernel.Invoke(&args);
                    start = t0 + direct;
                }
                for (int t = start; t < t1; t++)
                {
                    x.Bind(ref args, t);
                    args.Tiles = 1;
                    args.Output = tile;
                    args.OutputStride = DotFormats.PanelColumns;
                    args.Bias = null;
                    kernel.Invoke(&args);
                    Store(tile, t * rows, Math.Min(rows, x.Rows - t * rows), col0, cols);
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Store(float* tile, int row0, int rows, int col0, int cols)
    {
        for (int r = 0; r < rows; r++)
        {
            float* source = tile + r * DotFormats.PanelColumns;
            float* target = y + (long)(row0 + r) * weight.N + col0;
            if (bias == null)
            {
                for (int c = 0; c < cols; c++) target[c] = source[c];
            }
            else
            {
                for (int c = 0; c < cols; c++) target[c] = source[c] + bias[col0 + c];
            }
        }
    }
}
