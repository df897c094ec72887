namespace Quanto.Quantization;

/// <summary>The float8 encodings libtorch and optimum-quanto know.</summary>
public enum Float8Format
{
    /// <summary>1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinity; S.1111.111 is NaN; max 448.</summary>
    E4M3Fn,

    /// <summary>1 sign, 5 exponent (bias 15), 2 mantissa bits; IEEE-style infinities and NaNs; max 57344.</summary>
    E5M2,

    /// <summary>1 sign, 4 exponent (bias 8), 3 mantissa bits; no infinity, no negative zero; 0x80 is NaN; max 240.</summary>
    E4M3Fnuz,
}
