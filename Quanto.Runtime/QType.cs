using System.Collections.Frozen;
using TorchSharp;

namespace Quanto;

/// <summary>
/// The quantized types Quanto.NET supports, named as in optimum-quanto. An enum so that attributes can name them
/// (<c>[Quantize(Weights = QInt4)]</c> with <c>using static Quanto.QType;</c>); every property of a qtype (bits,
/// range, storage, name) comes from <see cref="QTypes"/>, the one source of truth.
/// </summary>
public enum QType
{
    /// <summary>2-bit integer, codes stored unsigned in [0, 3]; group-wise affine for weights.</summary>
    QInt2 = 1,

    /// <summary>4-bit integer, codes stored unsigned in [0, 15]; group-wise affine for weights.</summary>
    QInt4 = 2,

    /// <summary>8-bit signed integer in [-128, 127]; symmetric per channel for weights, per tensor for activations.</summary>
    QInt8 = 3,

    /// <summary>float8 e4m3fn (max ±448, NaN but no infinity); optimum-quanto's "qfloat8".</summary>
    QFloat8E4M3Fn = 4,

    /// <summary>float8 e5m2 (max ±57344, IEEE-style infinities).</summary>
    QFloat8E5M2 = 5,

    /// <summary>float8 e4m3fnuz (max ±240, no negative zero, code 0x80 is NaN).</summary>
    QFloat8E4M3Fnuz = 6,
}

/// <summary>Everything known about one <see cref="QType"/>.</summary>
/// <param name="QType">The qtype described.</param>
/// <param name="Name">optimum-quanto's name, as written in quanto_qmap.json ("qint4", "qfloat8_e4m3fn").</param>
/// <param name="Bits">Bits per stored value.</param>
/// <param name="IsFloat">True for the float8 types.</param>
/// <param name="QMin">Smallest representable value of the type (signed view: qint4 is -8).</param>
/// <param name="QMax">Largest representable value (qint8: 127, e4m3fn: 448).</param>
/// <param name="Storage">The libtorch scalar type that holds the values (int8, or a float8 id).</param>
/// <param name="Float8">The float8 encoding, for float types.</param>
public sealed record QTypeInfo(
    QType QType, string Name, int Bits, bool IsFloat, double QMin, double QMax, torch.ScalarType Storage,
    Quantization.Float8Format? Float8)
{
    /// <summary>True for 2- and 4-bit types, which are stored packed and quantized group-wise affine.</summary>
    public bool IsPacked => Bits < 8;

    /// <summary>Largest unsigned code of a packed (affine) type: 2^bits - 1.</summary>
    public int MaxCode => (1 << Bits) - 1;
}

/// <summary>The qtype catalogue: properties, names and parsing.</summary>
public static class QTypes
{
    /// <summary>libtorch's native id for float8 e5m2 (TorchSharp 0.107 has no named member).</summary>
    public const torch.ScalarType Float8E5M2 = (torch.ScalarType)23;

    /// <summary>libtorch's native id for float8 e4m3fn.</summary>
    public const torch.ScalarType Float8E4M3Fn = (torch.ScalarType)24;

    /// <summary>libtorch's native id for float8 e4m3fnuz.</summary>
    public const torch.ScalarType Float8E4M3Fnuz = (torch.ScalarType)26;

    private static readonly QTypeInfo[] Table =
    [
        new(QType.QInt2, "qint2", 2, false, -2, 1, torch.ScalarType.Int8, null),
        new(QType.QInt4, "qint4", 4, false, -8, 7, torch.ScalarType.Int8, null),
        new(QType.QInt8, "qint8", 8, false, -128, 127, torch.ScalarType.Int8, null),
        new(QType.QFloat8E4M3Fn, "qfloat8_e4m3fn", 8, true, -448, 448, Float8E4M3Fn,
            Quantization.Float8Format.E4M3Fn),
        new(QType.QFloat8E5M2, "qfloat8_e5m2", 8, true, -57344, 57344, Float8E5M2, Quantization.Float8Format.E5M2),
        new(QType.QFloat8E4M3Fnuz, "qfloat8_e4m3fnuz", 8, true, -240, 240, Float8E4M3Fnuz,
            Quantization.Float8Format.E4M3Fnuz),
    ];

    private static readonly FrozenDictionary<string, QType> ByName = Table
        .Select(info => KeyValuePair.Create(info.Name, info.QType))
        .Append(KeyValuePair.Create("qfloat8", QType.QFloat8E4M3Fn)) // optimum-quanto's alias
        .ToFrozenDictionary(StringComparer.Ordinal);

    /// <summary>All qtypes, in enum order.</summary>
    public static IReadOnlyList<QType> All { get; } = Table.Select(info => info.QType).ToArray();

    /// <summary>The description of <paramref name="qtype"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not a defined qtype (e.g. default(QType)).</exception>
    public static QTypeInfo Info(this QType qtype)
    {
        int index = (int)qtype - 1;
        if ((uint)index >= (uint)Table.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(qtype), qtype,
                $"Not a defined qtype; use one of {string.Join(", ", All)}.");
        }
        return Table[index];
    }

    /// <summary>optimum-quanto's name of the qtype ("qint4").</summary>
    public static string QuantoName(this QType qtype) => qtype.Info().Name;

    /// <summary>Bits per stored value.</summary>
    public static int Bits(this QType qtype) => qtype.Info().Bits;

    /// <summary>True for the float8 types.</summary>
    public static bool IsFloat(this QType qtype) => qtype.Info().IsFloat;

    /// <summary>Parses optimum-quanto's name ("qint4", "qfloat8_e5m2", alias "qfloat8").</summary>
    /// <exception cref="FormatException">The name is not a known qtype; the message lists the valid names.</exception>
    public static QType Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (TryParse(name, out QType qtype)) return qtype;
        throw new FormatException(
            $"Unknown qtype '{name}'. Valid names: {string.Join(", ", ByName.Keys.Order(StringComparer.Ordinal))}.");
    }

    /// <summary>Parses optimum-quanto's name; false when unknown.</summary>
    public static bool TryParse(string? name, out QType qtype) =>
        ByName.TryGetValue(name ?? string.Empty, out qtype);
}
