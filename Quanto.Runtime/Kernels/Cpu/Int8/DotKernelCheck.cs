namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// Runs a kernel and <see cref="DotReference"/> on the same random arguments (two tiles of two groups of two blocks of
/// two units, codes over their full range, random scales, shifts, sums and biases, the qint8 corrections of the
/// codes, output rows 20 floats apart) and requires equal results bit for bit:
/// both make the same exact integer sums and the same float steps. Assembled kernels go through this on first use in
/// Debug builds; the tests run it for every path.
/// </summary>
internal static unsafe class DotKernelCheck
{
    /// <summary>Throws when <paramref name="kernel"/> disagrees with the reference.</summary>
    /// <exception cref="InvalidOperationException">The kernel is wrong: the message names it and the first
    /// difference.</exception>
    public static void AgainstReference(DotKernel kernel, DotFormat format, int seed = 1)
    {
        const int groups = 2, blocks = 2, units = 2, tiles = 2, stride = 20;
        int rows = kernel.TileRows, unitK = format.UnitK();
        var random = new Random(seed);
        byte[] weights = Bytes(random, groups * blocks * units * DotFormats.UnitBytes, 0, 256);
        float[] scales = Floats(random, groups * DotFormats.PanelColumns), shifts = Floats(random, scales.Length);
        byte[] x = Bytes(random, tiles * groups * blocks * units * unitK * rows, -127, 128);
        float[] xScales = Floats(random, tiles * groups * blocks * rows), xSums = Floats(random, tiles * groups * rows);
        float[] bias = Floats(random, DotFormats.PanelColumns);
        // The corrections the kernels are given: 128 * the sum of each (tile, block, row)'s codes (kernels that sum
        // the signed codes skip them, so only true ones compare).
        var corrections = new int[xScales.Length];
        int quads = units * unitK / 4;
        for (int i = 0; i < corrections.Length; i++)
        {
            int row = i % rows, block = i / rows, sum = 0;
            for (int q = 0; q < quads; q++)
            {
                for (int b = 0; b < 4; b++) sum += (sbyte)x[(block * quads + q) * rows * 4 + row * 4 + b];
            }
            corrections[i] = 128 * sum;
        }
        float[] actual = new float[tiles * rows * stride], expected = new float[actual.Length];
        fixed (byte* w = weights, xp = x)
        fixed (float* s = scales, t = shifts, xs = xScales, sums = xSums, b = bias, y = actual, reference = expected)
        fixed (int* c = corrections)
        {
            var args = new DotArgs
            {
                Weights = w, Scales = s, Shifts = format.IsSigned() ? null : t, X = (sbyte*)xp, XScales = xs,
                XCorrections = format.IsSigned() ? c : null, XSums = format.IsSigned() ? null : sums,
                Groups = groups, BlocksPerGroup = blocks, UnitsPerBlock = units, Rows = rows, Output = y,
                Tiles = tiles, OutputStride = stride, Bias = seed % 2 == 0 ? null : b,
            };
            kernel.Invoke(&args);
            args.Output = reference;
            DotReference.Run(format, &args);
        }
        for (int i = 0; i < actual.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(actual[i]) != BitConverter.SingleToInt32Bits(expected[i]))
            {
                throw new InvalidOperationException(
                    $"The {kernel.Name} int8 kernel for {format} x {rows} rows computed {actual[i]} at output row " +
                    $"{i / stride}, column {i % stride}; the scalar reference {expected[i]}. It was not used.");
            }
        }
    }

    private static byte[] Bytes(Random random, int count, int min, int max) =>
        Enumerable.Range(0, count).Select(_ => (byte)random.Next(min, max)).ToArray();

    private static float[] Floats(Random random, int count) =>
        Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();

    /// <summary>
    /// The same for a bf16 kernel against <see cref="Bf16Reference"/>: random codes and bf16 activation pairs (two
    /// tiles of two groups of three units). vdpbf16ps may add a lane's two exact products in another order, so each
    /// result must agree within 2^-20 of the tile's largest |result|.
    /// </summary>
    /// <exception cref="InvalidOperationException">The kernel is wrong.</exception>
    public static void Bf16AgainstReference(DotKernel kernel, DotFormat format, int seed = 1)
    {
        const int groups = 2, units = 3, tiles = 2, stride = 20;
        int rows = kernel.TileRows, planes = format.Bf16Pairs().Length / 2;
        var random = new Random(seed);
        byte[] weights = Bytes(random, groups * units * DotFormats.UnitBytes, 0, 256);
        float[] scales = Floats(random, groups * DotFormats.PanelColumns), shifts = Floats(random, scales.Length);
        uint[] x = Enumerable.Range(0, tiles * groups * units * planes * rows)
            .Select(_ => Bf16Activations.Round((float)random.NextDouble() * 4 - 2) |
                         Bf16Activations.Round((float)random.NextDouble() * 4 - 2) << 16).ToArray();
        float[] xSums = Floats(random, tiles * groups * rows), bias = Floats(random, DotFormats.PanelColumns);
        float[] actual = new float[tiles * rows * stride], expected = new float[actual.Length];
        fixed (byte* w = weights)
        fixed (uint* xp = x)
        fixed (float* s = scales, t = shifts, sums = xSums, b = bias, y = actual, reference = expected)
        {
            var args = new DotArgs
            {
                Weights = w, Scales = s, Shifts = format.IsSigned() ? null : t, X = (sbyte*)xp,
                XSums = format.IsSigned() ? null : sums, Groups = groups, BlocksPerGroup = 1, UnitsPerBlock = units,
                Rows = rows, Output = y, Tiles = tiles, OutputStride = stride, Bias = seed % 2 == 0 ? null : b,
            };
            kernel.Invoke(&args);
            args.Output = reference;
            Bf16Reference.Run(format, &args);
        }
        double largest = expected.Max(v => Math.Abs(v));
        for (int i = 0; i < actual.Length; i++)
        {
            if (Math.Abs(actual[i] - expected[i]) > largest * Math.ScaleB(1, -20))
            {
                throw new InvalidOperationException(
                    $"The {kernel.Name} bf16 kernel for {format} x {rows} rows computed {actual[i]} at output row " +
                    $"{i / stride}, column {i % stride}; the scalar reference {expected[i]}. It was not used.");
            }
        }
    }
}
