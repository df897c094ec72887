namespace Quanto.Kernels.Cpu;

/// <summary>
/// Rescale factors of the arithmetic float8 decode: a float8 code's magnitude bits placed under a float32's exponent
/// field read as value * 2^(bias8 - 127), so multiplying by 2^(127 - bias8) restores the value exactly.
/// </summary>
internal static class Float8Constants
{
    /// <summary>e4m3fn (bias 7): 2^120.</summary>
    public static readonly float E4M3Rescale = MathF.ScaleB(1f, 120);

    /// <summary>e4m3fnuz (bias 8): 2^119.</summary>
    public static readonly float E4M3FnuzRescale = MathF.ScaleB(1f, 119);

    /// <summary>e5m2 (bias 15): 2^112.</summary>
    public static readonly float E5M2Rescale = MathF.ScaleB(1f, 112);
}
