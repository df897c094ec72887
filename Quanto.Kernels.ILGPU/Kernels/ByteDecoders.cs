using ILGPU;

namespace Quanto.Kernels.Ilgpu.Kernels;

/// <summary>
/// Turns one 8-bit weight code (passed in the low byte of a uint) into its float value before the per-channel scale.
/// Implemented by structs so ILGPU inlines the decode into each specialised kernel.
/// </summary>
public interface IByteDecoder
{
    /// <summary>The value of <paramref name="code"/> (0..255).</summary>
    float Decode(uint code);
}

/// <summary>qint8: the byte is a two's-complement int8.</summary>
public readonly struct Int8Decoder : IByteDecoder
{
    /// <inheritdoc />
    public float Decode(uint code) => (int)(code << 24) >> 24;
}

/// <summary>
/// float8 e4m3fn by bit operations (ILGPU has no fp8 type): 1 sign, 4 exponent bits (bias 7), 3 mantissa bits; no
/// infinities; S.1111.111 is NaN. A normal code becomes a float32 by rebiasing the exponent (+120) and moving the
/// mantissa to the top of float32's; subnormals (exponent 0) are mantissa * 2^-9, computed in float so no float32
/// denormal (which flush-to-zero hardware would drop) is ever formed.
/// </summary>
public readonly struct Float8E4M3FnDecoder : IByteDecoder
{
    /// <inheritdoc />
    public float Decode(uint code)
    {
        uint exponent = (code >> 3) & 0xF;
        uint mantissa = code & 0x7;
        float magnitude = exponent == 0
            ? mantissa * (1f / 512f)
            : Interop.IntAsFloat(((exponent + 120) << 23) | (mantissa << 20));
        if ((code & 0x7F) == 0x7F) magnitude = float.NaN;
        return (code & 0x80) != 0 ? -magnitude : magnitude;
    }
}

/// <summary>
/// float8 e5m2 by bit operations: 1 sign, 5 exponent bits (bias 15), 2 mantissa bits, IEEE-style infinities and NaNs
/// (exponent 31). Normal codes rebias the exponent (+112); subnormals are mantissa * 2^-16.
/// </summary>
public readonly struct Float8E5M2Decoder : IByteDecoder
{
    /// <inheritdoc />
    public float Decode(uint code)
    {
        uint exponent = (code >> 2) & 0x1F;
        uint mantissa = code & 0x3;
        float magnitude = exponent == 0
            ? mantissa * (1f / 65536f)
            : Interop.IntAsFloat(((exponent + 112) << 23) | (mantissa << 21));
        if (exponent == 0x1F) magnitude = mantissa == 0 ? float.PositiveInfinity : float.NaN;
        return (code & 0x80) != 0 ? -magnitude : magnitude;
    }
}
