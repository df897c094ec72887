namespace Quanto.Quantization;

/// <summary>How group-wise (2- and 4-bit) weights choose their group size, as optimum-quanto does.</summary>
public static class GroupSize
{
    /// <summary>optimum-quanto's default group size.</summary>
    public const int Default = 128;

    /// <summary>
    /// The group size used for a weight whose rows hold <paramref name="rowLength"/> elements (in_features, or
    /// in*kh*kw for a convolution). Rows no longer than the requested size are quantized per channel (one group per
    /// row). Otherwise the first of requested, requested-32, ... (down to 32) that divides the row is used — for the
    /// default 128 that is 128, 96, 64, 32 — and per channel when none does.
    /// </summary>
    /// <param name="rowLength">Elements per output row.</param>
    /// <param name="requested">The wanted group size; a positive multiple of 8.</param>
    /// <returns>The group size, which always divides <paramref name="rowLength"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException">requested is not a positive multiple of 8, or the row is empty.</exception>
    public static int Resolve(long rowLength, int requested = Default)
    {
        WeightChecks.CheckGroupSize(requested);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rowLength);
        if (rowLength <= requested) return checked((int)rowLength);
        for (int g = requested; g >= 8; g -= 32)
        {
            if (rowLength % g == 0) return g;
            if (g - 32 < 32) break;
        }
        return checked((int)rowLength);
    }
}
