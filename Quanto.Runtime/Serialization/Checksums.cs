using System.IO.Hashing;
using System.Text;

namespace Quanto.Serialization;

/// <summary>
/// XxHash64 checksums over a tensor's description and bytes. The description (name, dtype, shape and any qtype
/// fields) is hashed first so that a corrupted header that still parses — another dtype of the same size, a
/// renamed key — is caught like corrupted data.
/// </summary>
internal static class Checksums
{
    /// <summary>A hasher already fed with the description fields, each followed by a newline.</summary>
    internal static XxHash64 Start(params ReadOnlySpan<string?> fields)
    {
        var hash = new XxHash64();
        foreach (string? field in fields)
        {
            hash.Append(Encoding.UTF8.GetBytes(field ?? "\u2400")); // a distinct marker for "absent"
            hash.Append("\n"u8);
        }
        return hash;
    }

    /// <summary>Checksum of string pairs in ordinal key order (metadata), independent of insertion order.</summary>
    internal static ulong OfPairs(IEnumerable<KeyValuePair<string, string>> pairs)
    {
        var hash = new XxHash64();
        foreach (var (key, value) in pairs.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            hash.Append(Encoding.UTF8.GetBytes(key));
            hash.Append("\0"u8);
            hash.Append(Encoding.UTF8.GetBytes(value));
            hash.Append("\0"u8);
        }
        return hash.GetCurrentHashAsUInt64();
    }

    /// <summary>Shape formatted for hashing and messages: [a, b].</summary>
    internal static string FormatShape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>A checksum as 16 lowercase hex digits.</summary>
    internal static string ToHex(ulong value) =>
        value.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);
}
