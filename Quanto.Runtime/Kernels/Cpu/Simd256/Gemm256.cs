using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Simd256;

/// <summary>
/// Many-row products (GEMM), cache-blocked: a panel of <see cref="PanelRows"/> weight rows x up to
/// <see cref="CpuGemmBlocking.PanelFloats"/> inputs is dequantized once into L1, then a 4x2 register tile
/// (8 of the 16 ymm registers) multiplies it with every block of activation rows, which stay in L2.
/// </summary>
internal static unsafe class Gemm256
{
    public const int PanelRows = 2;

    public static void Run<TD>(CpuPreparedWeight w, CpuActivations x, int n0, int n1, float* y, float* bias)
        where TD : struct, IDecoder256
    {
        int panelBlocks = Math.Max(1, CpuGemmBlocking.PanelFloats / w.BlockWeights);
        int panelStride = panelBlocks * w.BlockWeights;
        float* panel = stackalloc float[PanelRows * panelStride];
        float* tile = stackalloc float[CpuActivations.RowTile * PanelRows];
        int totalBlocks = w.Groups * w.BlocksPerGroup;
        CpuGemmBlocking.InitOutput(y, bias, x.Rows, w.N, n0, n1);
        for (int m0 = 0; m0 < x.PaddedRows; m0 += CpuGemmBlocking.RowBlock)
        {
            int m1 = Math.Min(x.PaddedRows, m0 + CpuGemmBlocking.RowBlock);
            for (int nt = n0; nt < n1; nt += PanelRows)
            {
                int rows = Math.Min(PanelRows, n1 - nt);
                for (int b0 = 0; b0 < totalBlocks; b0 += panelBlocks)
                {
                    int nb = Math.Min(panelBlocks, totalBlocks - b0);
                    for (int i = 0; i < PanelRows; i++)
                    {
                        float* dst = panel + i * panelStride;
                        if (i < rows) DecodeRow<TD>(w, nt + i, b0, nb, dst);
                        else new Span<float>(dst, nb * w.BlockWeights).Clear();
                    }
                    int len = nb * w.BlockWeights;
                    for (int mt = m0; mt < m1; mt += CpuActivations.RowTile)
                    {
                        Micro(x.X + (long)mt * x.Stride + (long)b0 * w.BlockWeights, x.Stride, panel, panelStride, len, tile);
                        CpuGemmBlocking.AddTile(tile, PanelRows, y, w.N, mt, x.Rows, nt, rows);
                    }
                }
            }
        }
    }

    private static void DecodeRow<TD>(CpuPreparedWeight w, int n, int b0, int nb, float* dst)
        where TD : struct, IDecoder256
    {
        byte* row = w.Codes + (long)n * w.RowBytes;
        for (int b = b0; b < b0 + nb; b++)
        {
            int g = b / w.BlocksPerGroup;
            long index = (long)n * w.Groups + g;
            TD.Dequantize(row + (long)b * w.BlockBytes, dst, Vector256.Create(w.Scales[index]),
                Vector256.Create(-w.Shifts[index]));
            dst += w.BlockWeights;
        }
    }

    /// <summary>tile[r * 2 + c] = x row r · panel row c over <paramref name="len"/> (a multiple of 8).</summary>
    private static void Micro(float* x, int ldx, float* p, int ldp, int len, float* tile)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector256<float> c20 = default, c21 = default, c30 = default, c31 = default;
        float* x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx;
        float* p1 = p + ldp;
        for (int k = 0; k < len; k += 8)
        {
            Vector256<float> w0 = Vector256.Load(p + k), w1 = Vector256.Load(p1 + k);
            Vector256<float> a = Vector256.Load(x + k);
            c00 = Fma.MultiplyAdd(a, w0, c00);
            c01 = Fma.MultiplyAdd(a, w1, c01);
            a = Vector256.Load(x1 + k);
            c10 = Fma.MultiplyAdd(a, w0, c10);
            c11 = Fma.MultiplyAdd(a, w1, c11);
            a = Vector256.Load(x2 + k);
            c20 = Fma.MultiplyAdd(a, w0, c20);
            c21 = Fma.MultiplyAdd(a, w1, c21);
            a = Vector256.Load(x3 + k);
            c30 = Fma.MultiplyAdd(a, w0, c30);
            c31 = Fma.MultiplyAdd(a, w1, c31);
        }
        tile[0] = Vector256.Sum(c00); tile[1] = Vector256.Sum(c01); tile[2] = Vector256.Sum(c10);
        tile[3] = Vector256.Sum(c11); tile[4] = Vector256.Sum(c20); tile[5] = Vector256.Sum(c21);
        tile[6] = Vector256.Sum(c30); tile[7] = Vector256.Sum(c31);
    }
}
