using System.Runtime.CompilerServices;

namespace Quanto.Kernels.Cpu;

/// <summary>
/// Many-row products (GEMM), every SIMD width, cache-blocked: a panel of PanelRows weight rows x up to
/// <see cref="CpuGemmBlocking.PanelFloats"/> inputs is dequantized once into L1, then the width's register tile
/// (<see cref="ISimdWidth{TVec}.Micro"/>) multiplies it with every block of activation rows, which stay in L2.
/// </summary>
internal static unsafe class GemmKernel
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run<TVec, TW, TD>(CpuPreparedWeight w, CpuActivations x, int n0, int n1, float* y, float* bias)
        where TVec : unmanaged
        where TW : struct, ISimdWidth<TVec>
        where TD : struct, IBlockDecoder<TVec>
    {
        if (TD.BlockBytes != w.BlockBytes || TD.BlockWeights != w.BlockWeights)
            throw new InvalidOperationException($"Kernel block size does not match the {w.Format} layout.");
        int panelRows = TW.PanelRows;
        int panelBlocks = Math.Max(1, CpuGemmBlocking.PanelFloats / w.BlockWeights);
        int panelStride = panelBlocks * w.BlockWeights;
        float* panel = stackalloc float[panelRows * panelStride];
        float* tile = stackalloc float[CpuActivations.RowTile * panelRows];
        int totalBlocks = w.Groups * w.BlocksPerGroup;
        CpuGemmBlocking.InitOutput(y, bias, x.Rows, w.N, n0, n1);
        for (int m0 = 0; m0 < x.PaddedRows; m0 += CpuGemmBlocking.RowBlock)
        {
            int m1 = Math.Min(x.PaddedRows, m0 + CpuGemmBlocking.RowBlock);
            for (int nt = n0; nt < n1; nt += panelRows)
            {
                int rows = Math.Min(panelRows, n1 - nt);
                for (int b0 = 0; b0 < totalBlocks; b0 += panelBlocks)
                {
                    int nb = Math.Min(panelBlocks, totalBlocks - b0);
                    for (int i = 0; i < panelRows; i++)
                    {
                        float* dst = panel + i * panelStride;
                        if (i < rows) DecodeRow<TVec, TW, TD>(w, nt + i, b0, nb, dst);
                        else new Span<float>(dst, nb * w.BlockWeights).Clear();
                    }
                    int len = nb * w.BlockWeights;
                    for (int mt = m0; mt < m1; mt += CpuActivations.RowTile)
                    {
                        TW.Micro(x.X + (long)mt * x.Stride + (long)b0 * w.BlockWeights, x.Stride, panel, panelStride,
                            len, tile);
                        CpuGemmBlocking.AddTile(tile, panelRows, y, w.N, mt, x.Rows, nt, rows);
                    }
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DecodeRow<TVec, TW, TD>(CpuPreparedWeight w, int n, int b0, int nb, float* dst)
        where TVec : unmanaged
        where TW : struct, ISimdWidth<TVec>
        where TD : struct, IBlockDecoder<TVec>
    {
        byte* row = w.Codes + (long)n * w.RowBytes;
        for (int b = b0; b < b0 + nb; b++)
        {
            long index = (long)n * w.Groups + b / w.BlocksPerGroup;
            TD.Dequantize(row + (long)b * w.BlockBytes, dst, TW.Broadcast(w.Scales[index]), TW.Broadcast(-w.Shifts[index]));
            dst += w.BlockWeights;
        }
    }
}
