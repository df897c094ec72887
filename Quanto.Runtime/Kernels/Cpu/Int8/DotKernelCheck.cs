namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// Runs a kernel and <see cref="DotReference"/> on the same random arguments (two groups of two blocks of two units,
/// codes over their full range, random scales, shifts, corrections and sums) and requires equal results bit for bit:
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
        const int groups = 2, blocks = 2, units = 2;
        int rows = kernel.TileRows, unitK = format.UnitK();
        var random = new Random(seed);
        byte[] weights = Bytes(random, groups * blocks * units * DotFormats.UnitBytes, 0, 256);
        float[] scales = Floats(random, groups * DotFormats.PanelColumns), shifts = Floats(random, scales.Length);
        byte[] x = Bytes(random, groups * blocks * units * unitK * rows, -127, 128);
        float[] xScales = Floats(random, groups * blocks * rows), xSums = Floats(random, groups * rows);
        int[] corrections = Enumerable.Range(0, groups * blocks * rows).Select(_ => random.Next(-40000, 40000)).ToArray();
        float[] actual = new float[rows * DotFormats.PanelColumns], expected = new float[actual.Length];
        fixed (byte* w = weights, xp = x)
        fixed (float* s = scales, t = shifts, xs = xScales, sums = xSums, y = actual, reference = expected)
        fixed (int* c = corrections)
        {
            var args = new DotArgs
            {
                Weights = w, Scales = s, Shifts = format.IsSigned() ? null : t, X = (sbyte*)xp, XScales = xs,
                XCorrections = format.IsSigned() ? c : null, XSums = format.IsSigned() ? null : sums,
                Groups = groups, BlocksPerGroup = blocks, UnitsPerBlock = units, Rows = rows, Output = y,
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
                    $"The {kernel.Name} int8 kernel for {format} x {rows} rows computed {actual[i]} at row " +
                    $"{i / DotFormats.PanelColumns}, column {i % DotFormats.PanelColumns}; the scalar reference " +
                    $"{expected[i]}. It was not used.");
            }
        }
    }

    private static byte[] Bytes(Random random, int count, int min, int max) =>
        Enumerable.Range(0, count).Select(_ => (byte)random.Next(min, max)).ToArray();

    private static float[] Floats(Random random, int count) =>
        Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
}
