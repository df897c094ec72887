namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// The scalar bf16 GEMM micro-kernel (<see cref="Bf16GemmArgs"/>, any R x P): per group and column the pair
/// products summed in float32 with fused multiply-adds (a pair's second product first, as vdpbf16ps), then
/// acc += sum * scale and (2/4-bit) acc -= shift * xSum. The reference the assembled kernels are checked against.
/// </summary>
internal static unsafe class Bf16GemmReference
{
    public static void Run(Bf16GemmArgs* a, int rows, int panels)
    {
        int columns = panels * DotFormats.PanelColumns;
        Span<float> sums = stackalloc float[rows * columns];
        for (int t = 0; t < a->Tiles; t++)
        {
            for (int g = 0; g < a->Groups; g++)
            {
                sums.Clear();
                for (int q = g * a->PairsPerGroup; q < (g + 1) * a->PairsPerGroup; q++)
                {
                    for (int r = 0; r < rows; r++)
                    {
                        ushort* x = (ushort*)((byte*)a->X + (t * rows + r) * a->XStride) + 2 * q;
                        float low = Bf16Activations.Widen(x[0]), high = Bf16Activations.Widen(x[1]);
                        for (int c = 0; c < columns; c++)
                        {
                            ushort* w = a->Weights + ((long)q * panels + c / 16) * 32 + 2 * (c % 16);
                            float sum = MathF.FusedMultiplyAdd(Bf16Activations.Widen(w[1]), high, sums[r * columns + c]);
                            sums[r * columns + c] = MathF.FusedMultiplyAdd(Bf16Activations.Widen(w[0]), low, sum);
                        }
                    }
                }
                for (int r = 0; r < rows; r++)
                {
                    float* acc = a->Acc + (t * rows + r) * Bf16GemmArgs.AccRowFloats;
                    for (int c = 0; c < columns; c++)
                    {
                        int at = g * columns + c;
                        acc[c] = MathF.FusedMultiplyAdd(sums[r * columns + c], a->Scales[at], acc[c]);
                        if (a->Shifts == null) continue;
                        float xSum = *(float*)((byte*)a->XSums + g * a->XSumsGroupStride + (t * rows + r) * 4);
                        acc[c] = MathF.FusedMultiplyAdd(-a->Shifts[at], xSum, acc[c]);
                    }
                }
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="kernel"/> and <see cref="Run"/> on the same random arguments (two tiles of three groups of
    /// four pairs, codes 0..255 and activations in [-2, 2] as bf16, random scales, shifts, sums and starting
    /// accumulators, activation rows 136 bytes apart); each result must agree within 2^-20 of the largest |result|
    /// (the hardware may round a pair's two additions in another order).
    /// </summary>
    /// <exception cref="InvalidOperationException">The kernel is wrong: the message names it and the first
    /// difference.</exception>
    public static void Check(delegate* unmanaged[SuppressGCTransition]<Bf16GemmArgs*, void> kernel, int rows,
        int panels, bool shifted, int seed = 1)
    {
        const int groups = 3, pairs = 4, tiles = 2, strideWords = 68;
        var random = new Random(seed);
        ushort[] weights = Enumerable.Range(0, groups * pairs * panels * 32)
            .Select(_ => (ushort)Bf16Activations.Round(random.Next(0, 256))).ToArray();
        ushort[] x = Enumerable.Range(0, tiles * rows * strideWords)
            .Select(_ => (ushort)Bf16Activations.Round((float)random.NextDouble() * 4 - 2)).ToArray();
        float[] scales = Floats(random, groups * panels * 16), shifts = Floats(random, scales.Length);
        float[] xSums = Floats(random, groups * tiles * rows);
        float[] actual = Floats(random, tiles * rows * Bf16GemmArgs.AccRowFloats), expected = [.. actual];
        fixed (ushort* w = weights, xp = x)
        fixed (float* s = scales, t = shifts, sums = xSums, y = actual, reference = expected)
        {
            var args = new Bf16GemmArgs
            {
                Weights = w, Scales = s, Shifts = shifted ? t : null, X = xp, XStride = strideWords * 2,
                XSums = shifted ? sums : null, XSumsGroupStride = tiles * rows * 4, Acc = y, Groups = groups,
                PairsPerGroup = pairs, Tiles = tiles,
            };
            kernel(&args);
            args.Acc = reference;
            Run(&args, rows, panels);
        }
        double largest = expected.Max(v => Math.Abs(v));
        for (int i = 0; i < actual.Length; i++)
        {
            if (Math.Abs(actual[i] - expected[i]) > largest * Math.ScaleB(1, -20))
            {
                throw new InvalidOperationException(
                    $"The assembled bf16 GEMM kernel for {rows} rows x {panels} panels{(shifted ? " with shifts" : "")} " +
                    $"computed {actual[i]} at row {i / Bf16GemmArgs.AccRowFloats}, column " +
                    $"{i % Bf16GemmArgs.AccRowFloats}; the scalar reference {expected[i]}. It was not used.");
            }
        }
    }

    private static float[] Floats(Random random, int count) =>
        Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
}
