using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Simd512;

/// <summary>
/// Many-row products (GEMM), cache-blocked: a panel of <see cref="PanelRows"/> weight rows x up to
/// <see cref="CpuGemmBlocking.PanelFloats"/> inputs is dequantized once into L1, then a 4x4 register tile
/// (16 zmm accumulators) multiplies it with every block of activation rows, which stay in L2.
/// </summary>
internal static unsafe class Gemm512
{
    public const int PanelRows = 4;

    public static void Run<TD>(CpuPreparedWeight w, CpuActivations x, int n0, int n1, float* y, float* bias)
        where TD : struct, IDecoder512
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
        where TD : struct, IDecoder512
    {
        byte* row = w.Codes + (long)n * w.RowBytes;
        for (int b = b0; b < b0 + nb; b++)
        {
            int g = b / w.BlocksPerGroup;
            long index = (long)n * w.Groups + g;
            TD.Dequantize(row + (long)b * w.BlockBytes, dst, Vector512.Create(w.Scales[index]),
                Vector512.Create(-w.Shifts[index]));
            dst += w.BlockWeights;
        }
    }

    /// <summary>tile[r * 4 + c] = x row r · panel row c over <paramref name="len"/> (a multiple of 16).</summary>
    private static void Micro(float* x, int ldx, float* p, int ldp, int len, float* tile)
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        float* x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx;
        float* p1 = p + ldp, p2 = p + 2 * ldp, p3 = p + 3 * ldp;
        for (int k = 0; k < len; k += 16)
        {
            Vector512<float> w0 = Vector512.Load(p + k), w1 = Vector512.Load(p1 + k);
            Vector512<float> w2 = Vector512.Load(p2 + k), w3 = Vector512.Load(p3 + k);
            Vector512<float> a = Vector512.Load(x + k);
            c00 = Avx512F.FusedMultiplyAdd(a, w0, c00);
            c01 = Avx512F.FusedMultiplyAdd(a, w1, c01);
            c02 = Avx512F.FusedMultiplyAdd(a, w2, c02);
            c03 = Avx512F.FusedMultiplyAdd(a, w3, c03);
            a = Vector512.Load(x1 + k);
            c10 = Avx512F.FusedMultiplyAdd(a, w0, c10);
            c11 = Avx512F.FusedMultiplyAdd(a, w1, c11);
            c12 = Avx512F.FusedMultiplyAdd(a, w2, c12);
            c13 = Avx512F.FusedMultiplyAdd(a, w3, c13);
            a = Vector512.Load(x2 + k);
            c20 = Avx512F.FusedMultiplyAdd(a, w0, c20);
            c21 = Avx512F.FusedMultiplyAdd(a, w1, c21);
            c22 = Avx512F.FusedMultiplyAdd(a, w2, c22);
            c23 = Avx512F.FusedMultiplyAdd(a, w3, c23);
            a = Vector512.Load(x3 + k);
            c30 = Avx512F.FusedMultiplyAdd(a, w0, c30);
            c31 = Avx512F.FusedMultiplyAdd(a, w1, c31);
            c32 = Avx512F.FusedMultiplyAdd(a, w2, c32);
            c33 = Avx512F.FusedMultiplyAdd(a, w3, c33);
        }
        tile[0] = Vector512.Sum(c00); tile[1] = Vector512.Sum(c01); tile[2] = Vector512.Sum(c02);
        tile[3] = Vector512.Sum(c03); tile[4] = Vector512.Sum(c10); tile[5] = Vector512.Sum(c11);
        tile[6] = Vector512.Sum(c12); tile[7] = Vector512.Sum(c13); tile[8] = Vector512.Sum(c20);
        tile[9] = Vector512.Sum(c21); tile[10] = Vector512.Sum(c22); tile[11] = Vector512.Sum(c23);
        tile[12] = Vector512.Sum(c30); tile[13] = Vector512.Sum(c31); tile[14] = Vector512.Sum(c32);
        tile[15] = Vector512.Sum(c33);
    }
}
