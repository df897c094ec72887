namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// The scalar int8-activation kernel: any format, any tile height, exact int32 dot products, and the same float
/// steps in the same order as the SIMD and assembled kernels (per block a fused multiply-add of the corrected sum by
/// scale * block scale; per group a fused subtraction of shift * group sum), so their results are equal bit for bit.
/// It is the reference the assembled kernels are checked against and the path of CPUs without SIMD.
/// </summary>
internal static unsafe class DotReference
{
    public static void Run(DotFormat format, DotArgs* a)
    {
        int rows = a->Rows, unitK = format.UnitK();
        Span<float> tile = stackalloc float[rows * DotFormats.PanelColumns];
        Span<int> sums = stackalloc int[rows * DotFormats.PanelColumns];
        sbyte* x = a->X;
        float* xScales = a->XScales, xSums = a->XSums;
        int* xCorrections = a->XCorrections;
        for (int t = 0; t < a->Tiles; t++)
        {
            tile.Clear();
            Tile(format, a, rows, unitK, tile, sums, ref x, ref xScales, ref xCorrections, ref xSums);
            DotTiles.Store(a, t, tile);
        }
    }

    private static void Tile(DotFormat format, DotArgs* a, int rows, int unitK, Span<float> tile, Span<int> sums,
        ref sbyte* x, ref float* xScales, ref int* xCorrections, ref float* xSums)
    {
        byte* w = a->Weights;
        for (int g = 0; g < a->Groups; g++)
        {
            float* scales = a->Scales + g * DotFormats.PanelColumns;
            for (int b = 0; b < a->BlocksPerGroup; b++)
            {
                sums.Clear();
                for (int u = 0; u < a->UnitsPerBlock; u++, w += DotFormats.UnitBytes, x += unitK * rows)
                {
                    for (int c = 0; c < DotFormats.PanelColumns; c++)
                    {
                        for (int i = 0; i < unitK; i++)
                        {
                            int code = format.Code(w, c, i);
                            for (int r = 0; r < rows; r++)
                                sums[r * DotFormats.PanelColumns + c] += code * x[(i >> 2) * 4 * rows + r * 4 + (i & 3)];
                        }
                    }
                }
                for (int r = 0; r < rows; r++)
                {
                    int correction = xCorrections == null ? 0 : xCorrections[r];
                    for (int c = 0; c < DotFormats.PanelColumns; c++)
                    {
                        int index = r * DotFormats.PanelColumns + c;
                        tile[index] = MathF.FusedMultiplyAdd(unchecked(sums[index] - correction),
                            scales[c] * xScales[r], tile[index]);
                    }
                }
                xScales += rows;
                if (xCorrections != null) xCorrections += rows;
            }
            if (xSums == null) continue;
            float* shifts = a->Shifts + g * DotFormats.PanelColumns;
            for (int r = 0; r < rows; r++)
            {
                for (int c = 0; c < DotFormats.PanelColumns; c++)
                {
                    int index = r * DotFormats.PanelColumns + c;
                    tile[index] = MathF.FusedMultiplyAdd(-shifts[c], xSums[r], tile[index]);
                }
            }
            xSums += rows;
        }
    }
}
