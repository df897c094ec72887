using System.Runtime.CompilerServices;

namespace Quanto.Kernels.Cpu;

/// <summary>Cache-blocking sizes and the output bookkeeping the GEMM drivers of every path share.</summary>
internal static unsafe class CpuGemmBlocking
{
    /// <summary>
    /// Inputs per dequantized panel row: 4 rows x 1024 floats = 16 KiB, half of Zen 4's 32 KiB L1D; long enough that
    /// the horizontal sums at the end of each panel cost under 10% of its FMAs.
    /// </summary>
    public const int PanelFloats = 1024;

    /// <summary>Activation rows per block: 128 rows x 1024 floats = 512 KiB, which stays in a 1 MiB L2.</summary>
    public const int RowBlock = 128;

    /// <summary>Sets y[0..rows, n0..n1) to the bias (or zero) before panels add into it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void InitOutput(float* y, float* bias, int rows, int n, int n0, int n1)
    {
        for (int r = 0; r < rows; r++)
        {
            float* yr = y + (long)r * n;
            for (int c = n0; c < n1; c++) yr[c] = bias == null ? 0f : bias[c];
        }
    }

    /// <summary>Adds a RowTile x <paramref name="tileColumns"/> tile into y, skipping padded rows and columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddTile(float* tile, int tileColumns, float* y, int n, int row0, int rows, int col0, int cols)
    {
        for (int r = 0; r < CpuActivations.RowTile && row0 + r < rows; r++)
        {
            float* yr = y + (long)(row0 + r) * n + col0;
            for (int c = 0; c < cols; c++) yr[c] += tile[r * tileColumns + c];
        }
    }
}
