namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// The scalar bf16 panel kernel (tiles of any height): per group the codes, exact in bfloat16, times the bf16
/// activation pairs summed in float32, then one fused multiply-add by the group's scale and (2/4-bit) one fused
/// subtraction of shift * group sum. The reference the assembled vdpbf16ps kernels are checked against; they may
/// add a lane's two products in another order, so the comparison allows float32 rounding (see DotKernelCheck).
/// </summary>
internal static unsafe class Bf16Reference
{
    public static void Run(DotFormat format, DotArgs* a)
    {
        int rows = a->Rows, planes = format.Bf16Pairs().Length / 2;
        Span<float> tile = stackalloc float[rows * DotFormats.PanelColumns];
        Span<float> sums = stackalloc float[rows * DotFormats.PanelColumns];
        uint* x = (uint*)a->X;
        float* xSums = a->XSums;
        for (int t = 0; t < a->Tiles; t++)
        {
            tile.Clear();
            byte* w = a->Weights;
            for (int g = 0; g < a->Groups; g++)
            {
                sums.Clear();
                for (int u = 0; u < a->UnitsPerBlock; u++, w += DotFormats.UnitBytes)
                {
                    for (int p = 0; p < planes; p++, x += rows)
                    {
                        int first = format.Bf16Pairs()[2 * p], second = format.Bf16Pairs()[2 * p + 1];
                        for (int c = 0; c < DotFormats.PanelColumns; c++)
                        {
                            float low = Value(format, w, c, first), high = Value(format, w, c, second);
                            for (int r = 0; r < rows; r++)
                            {
                                int index = r * DotFormats.PanelColumns + c;
                                float sum = MathF.FusedMultiplyAdd(high, Bf16Activations.Widen(x[r] >> 16), sums[index]);
                                sums[index] = MathF.FusedMultiplyAdd(low, Bf16Activations.Widen(x[r] & 0xFFFF), sum);
                            }
                        }
                    }
                }
                float* scales = a->Scales + g * DotFormats.PanelColumns;
                for (int index = 0; index < tile.Length; index++)
                    tile[index] = MathF.FusedMultiplyAdd(sums[index], scales[index % DotFormats.PanelColumns], tile[index]);
                if (xSums == null) continue;
                float* shifts = a->Shifts + g * DotFormats.PanelColumns;
                for (int index = 0; index < tile.Length; index++)
                {
                    tile[index] = MathF.FusedMultiplyAdd(-shifts[index % DotFormats.PanelColumns],
                        xSums[index / DotFormats.PanelColumns], tile[index]);
                }
                xSums += rows;
            }
            DotTiles.Store(a, t, tile);
        }
    }

    /// <summary>The code of column <paramref name="column"/>, input <paramref name="input"/> as a value (qint8
    /// without its +128 offset).</summary>
    private static float Value(DotFormat format, byte* unit, int column, int input) =>
        format.Code(unit, column, input) - (format.IsSigned() ? 128 : 0);
}
