namespace Quanto.Generators;

/// <summary>
/// The generator stands alone (it cannot reference Quanto.Runtime), so it keeps this small copy of Quanto.QType:
/// the enum values the attribute carries, their member names, optimum-quanto names and bit widths. Keep in step
/// with Quanto.Runtime/QType.cs.
/// </summary>
internal static class QTypeNames
{
    private static readonly (string Member, string Quanto, int Bits)[] Table =
    [
        ("QInt2", "qint2", 2),
        ("QInt4", "qint4", 4),
        ("QInt8", "qint8", 8),
        ("QFloat8E4M3Fn", "qfloat8_e4m3fn", 8),
        ("QFloat8E5M2", "qfloat8_e5m2", 8),
        ("QFloat8E4M3Fnuz", "qfloat8_e4m3fnuz", 8),
    ];

    /// <summary>The member name of enum value <paramref name="value"/> ("QInt4"), or null when undefined.</summary>
    public static string? Member(int value) => value >= 1 && value <= Table.Length ? Table[value - 1].Member : null;

    /// <summary>optimum-quanto's name ("qint4"), or "none" for null.</summary>
    public static string QuantoName(string? member)
    {
        foreach (var entry in Table)
        {
            if (entry.Member == member) return entry.Quanto;
        }
        return "none";
    }

    /// <summary>Bits per value of a member name.</summary>
    public static int Bits(string member)
    {
        foreach (var entry in Table)
        {
            if (entry.Member == member) return entry.Bits;
        }
        return 8;
    }
}
