namespace Quanto.Kernels.Cpu.Int8;

/// <summary>The output step the managed int8-activation kernels share: one finished tile to its rows.</summary>
internal static unsafe class DotTiles
{
    /// <summary>Writes tile <paramref name="t"/> (R x 16, row-major) to its output rows, adding the biases.</summary>
    public static void Store(DotArgs* a, int t, ReadOnlySpan<float> tile)
    {
        for (int r = 0; r < a->Rows; r++)
        {
            float* target = a->Output + ((long)t * a->Rows + r) * a->OutputStride;
            for (int c = 0; c < DotFormats.PanelColumns; c++)
            {
                float value = tile[r * DotFormats.PanelColumns + c];
                target[c] = a->Bias == null ? value : value + a->Bias[c];
            }
        }
    }
}
