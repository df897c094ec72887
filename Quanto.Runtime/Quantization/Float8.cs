using System.Runtime.CompilerServices;

namespace Quanto.Quantization;

/// <summary>
/// float32 &lt;-&gt; float8 conversion in managed code (TorchSharp has no float8 element type). Encoding saturates
/// (|x| above the format's max, infinities included, become ±max, as optimum-quanto clamps before casting) and rounds
/// to nearest, ties to even, like libtorch's casts. NaN stays NaN.
/// </summary>
public static class Float8
{
    private sealed class Spec
    {
        public Spec(Float8Format format, int exponentBits, int bias, bool unsignedZero)
        {
            Format = format;
            MantissaBits = 7 - exponentBits;
            Bias = bias;
            UnsignedZero = unsignedZero;
            Decode = new float[256];
            for (int code = 0; code < 256; code++) Decode[code] = DecodeSlow(code, exponentBits);
            for (int code = 0x7F; code >= 0; code--)
            {
                if (float.IsFinite(Decode[code])) { MaxCode = (byte)code; break; }
            }
            Max = Decode[MaxCode];
            MinNormal = MathF.ScaleB(1f, 1 - bias);
            SubnormalStep = MathF.ScaleB(1f, 1 - bias - MantissaBits);
        }

        public Float8Format Format { get; }
        public int MantissaBits { get; }
        public int Bias { get; }
        public bool UnsignedZero { get; }
        public float[] Decode { get; }
        public byte MaxCode { get; }
        public float Max { get; }
        public float MinNormal { get; }
        public float SubnormalStep { get; }
        public byte NaNCode => Format switch
        {
            Float8Format.E4M3Fn => 0x7F,
            Float8Format.E5M2 => 0x7F,
            _ => 0x80,
        };

        private float DecodeSlow(int code, int exponentBits)
        {
            int sign = code >> 7;
            int exponent = (code >> MantissaBits) & ((1 << exponentBits) - 1);
            int mantissa = code & ((1 << MantissaBits) - 1);
            int maxExponent = (1 << exponentBits) - 1;
            switch (Format)
            {
                case Float8Format.E4M3Fnuz when code == 0x80:
                    return float.NaN;
                case Float8Format.E4M3Fn when exponent == maxExponent && mantissa == (1 << MantissaBits) - 1:
                    return float.NaN;
                case Float8Format.E5M2 when exponent == maxExponent:
                    return mantissa == 0 ? (sign == 1 ? float.NegativeInfinity : float.PositiveInfinity) : float.NaN;
            }
            float magnitude = exponent == 0
                ? MathF.ScaleB(mantissa, 1 - Bias - MantissaBits)
                : MathF.ScaleB(1f + mantissa / (float)(1 << MantissaBits), exponent - Bias);
            return sign == 1 ? -magnitude : magnitude;
        }
    }

    private static readonly Spec[] Specs =
    [
        new(Float8Format.E4M3Fn, 4, 7, unsignedZero: false),
        new(Float8Format.E5M2, 5, 15, unsignedZero: false),
        new(Float8Format.E4M3Fnuz, 4, 8, unsignedZero: true),
    ];

    private static Spec Of(Float8Format format) => (uint)format < (uint)Specs.Length
        ? Specs[(int)format]
        : throw new ArgumentOutOfRangeException(nameof(format), format, "Unknown float8 format.");

    /// <summary>Largest finite value of the format (448, 57344 or 240).</summary>
    public static float MaxValue(Float8Format format) => Of(format).Max;

    /// <summary>The 256 decoded values of the format, indexed by code (NaN codes decode to NaN).</summary>
    public static ReadOnlySpan<float> DecodeTable(Float8Format format) => Of(format).Decode;

    /// <summary>Decodes one float8 code.</summary>
    public static float Decode(byte code, Float8Format format) => Of(format).Decode[code];

    /// <summary>Encodes with saturation to ±max and round-to-nearest-even.</summary>
    public static byte Encode(float value, Float8Format format) => Encode(value, Of(format));

    /// <summary>Encodes a span (see <see cref="Encode(float, Float8Format)"/>).</summary>
    /// <exception cref="ArgumentException">The destination is shorter than the source.</exception>
    public static void Encode(ReadOnlySpan<float> source, Span<byte> destination, Float8Format format)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"Destination holds {destination.Length} codes; need {source.Length}.",
                nameof(destination));
        Spec spec = Of(format);
        for (int i = 0; i < source.Length; i++) destination[i] = Encode(source[i], spec);
    }

    /// <summary>Decodes a span of codes.</summary>
    /// <exception cref="ArgumentException">The destination is shorter than the source.</exception>
    public static void Decode(ReadOnlySpan<byte> source, Span<float> destination, Float8Format format)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"Destination holds {destination.Length} values; need {source.Length}.",
                nameof(destination));
        float[] table = Of(format).Decode;
        for (int i = 0; i < source.Length; i++) destination[i] = table[source[i]];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte Encode(float value, Spec spec)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        int sign = (int)(bits >> 31);
        if (float.IsNaN(value)) return spec.UnsignedZero ? spec.NaNCode : (byte)(spec.NaNCode | (sign << 7));

        float magnitude = MathF.Abs(value);
        int code;
        if (magnitude >= spec.Max)
        {
            code = spec.MaxCode;
        }
        else if (magnitude < spec.MinNormal)
        {
            // Subnormal range: an integer multiple of the smallest step; the scaling by a power of two is exact.
            // A result of 2^mantissaBits is the smallest normal, whose code is exactly that integer.
            code = (int)Math.Round(magnitude / (double)spec.SubnormalStep, MidpointRounding.ToEven);
        }
        else
        {
            int shift = 23 - spec.MantissaBits;
            uint mantissa32 = bits & 0x7FFFFF;
            int exponent = (int)((bits >> 23) & 0xFF) - 127 + spec.Bias;
            uint mantissa = mantissa32 >> shift;
            uint rest = mantissa32 & ((1u << shift) - 1);
            uint half = 1u << (shift - 1);
            if (rest > half || (rest == half && (mantissa & 1) != 0)) mantissa++;
            // A mantissa carry into the exponent is the code's own carry: (e << m) + 2^m == (e + 1) << m.
            code = Math.Min((exponent << spec.MantissaBits) + (int)mantissa, spec.MaxCode);
        }
        if (code == 0 && spec.UnsignedZero) return 0;
        return (byte)(code | (sign << 7));
    }
}
