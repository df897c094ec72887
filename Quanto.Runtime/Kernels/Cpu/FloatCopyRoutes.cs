namespace Quanto.Kernels.Cpu;

/// <summary>
/// The float-activation dispatch of small weights (those with a <see cref="CpuPreparedWeight.FloatCopy"/>): from
/// <see cref="CopyMinRows"/> activation rows on, libtorch's F.linear on the float32 copy beats the quantized kernel,
/// below it the kernel wins on fixed cost. A fixed rule rather than a timing taken at run time, so that the same input
/// gives the same output bit for bit in every process (both routes compute x · dequant(W)ᵀ in float32, but in a
/// different order).
/// </summary>
/// <remarks>
/// The crossover, from Quanto.Bench on one thread (2026-12-01, Zen 5, load average about 20, `--float-copy-limit 0
/// --shape m,128,512 --shape m,256,256 --rounds 3`): int8 / int4 kernel against F.linear fp32 at 128 x 512: m = 1
/// 2.98x / 2.59x, m = 8 1.25x / 1.06x, m = 32 1.03x / 0.72x, m = 128 0.59x / 0.62x, m = 512 0.51x / 0.46x; at
/// 256 x 256: m = 64 1.08x / 0.92x, m = 512 0.86x / 0.76x.
/// </remarks>
internal static class FloatCopyRoutes
{
    /// <summary>Rows from which a weight with a float copy runs F.linear on it.</summary>
    public const int CopyMinRows = 16;

    /// <summary>True when <paramref name="rows"/> activation rows should run on the float copy.</summary>
    public static bool UseCopy(int rows) => rows >= CopyMinRows;
}
