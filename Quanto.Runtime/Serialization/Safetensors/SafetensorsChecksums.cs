using System.Globalization;
using System.Text.Json;

namespace Quanto.Serialization;

/// <summary>
/// Optional integrity record in a safetensors file's __metadata__ (key <see cref="MetadataKey"/>): the marker
/// <see cref="Marker"/> then a JSON object mapping each tensor name to the XxHash64 of its description and bytes,
/// and <c>__metadata__</c> to the hash of the other metadata entries. The marker identifies the record by its value
/// too, so a corrupted key cannot silently turn the record into ordinary metadata. Other readers (safetensors,
/// optimum-quanto) ignore it, as metadata is free-form;
/// files without it load unchecked, as the format itself has no checksum.
/// </summary>
internal static class SafetensorsChecksums
{
    /// <summary>The __metadata__ key holding the checksums.</summary>
    internal const string MetadataKey = "quanto_checksums";

    /// <summary>Prefix of the record's value.</summary>
    internal const string Marker = "xxh64:";

    /// <summary>Starts the checksum of one tensor (description first, then bytes are appended).</summary>
    internal static System.IO.Hashing.XxHash64 Start(SafetensorsEntry entry) =>
        Checksums.Start(entry.Name, SafetensorsDType.NameOf(entry.DType), Checksums.FormatShape(entry.Shape));

    /// <summary>Formats the record: {"__metadata__": hex, name: hex, ...}.</summary>
    internal static string Format(ulong metadataHash, IEnumerable<KeyValuePair<string, ulong>> tensorHashes)
    {
        var values = new Dictionary<string, string> { [SafetensorsHeader.MetadataKey] = Checksums.ToHex(metadataHash) };
        foreach (var (name, hash) in tensorHashes) values[name] = Checksums.ToHex(hash);
        return Marker + JsonSerializer.Serialize(values, SafetensorsWriter.JsonOptions);
    }

    /// <summary>Parses the record; a malformed record is a format error (we wrote it valid).</summary>
    internal static Dictionary<string, ulong> Parse(string value, string source)
    {
        if (!value.StartsWith(Marker, StringComparison.Ordinal))
            throw new QuantoFormatException(source, $"__metadata__ '{MetadataKey}' lacks its '{Marker}' marker.");
        Dictionary<string, string>? raw;
        try
        {
            raw = JsonSerializer.Deserialize<Dictionary<string, string>>(value.AsSpan(Marker.Length));
        }
        catch (JsonException e)
        {
            throw new QuantoFormatException(source, $"__metadata__ '{MetadataKey}' is not valid: {e.Message}", e);
        }
        var hashes = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var (name, hex) in raw ?? [])
        {
            if (hex is null || hex.Length != 16 ||
                !ulong.TryParse(hex, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong hash))
            {
                throw new QuantoFormatException(source,
                    $"__metadata__ '{MetadataKey}': '{name}' is not a 16-digit hex hash.");
            }
            hashes[name] = hash;
        }
        if (!hashes.ContainsKey(SafetensorsHeader.MetadataKey))
            throw new QuantoFormatException(source, $"__metadata__ '{MetadataKey}' lacks the metadata hash.");
        return hashes;
    }

    /// <summary>
    /// Checks that the record names exactly the file's tensors and that the metadata hash matches; returns the
    /// per-tensor hashes to compare while reading.
    /// </summary>
    internal static Dictionary<string, ulong>? Verify(SafetensorsHeader header, string source,
        out Dictionary<string, string> userMetadata)
    {
        userMetadata = new Dictionary<string, string>(header.Metadata, StringComparer.Ordinal);
        string? stray = userMetadata.FirstOrDefault(p => p.Key != MetadataKey && p.Value.StartsWith(Marker + "{",
            StringComparison.Ordinal)).Key;
        if (stray is not null)
            throw new QuantoFormatException(source,
                $"__metadata__ '{stray}' holds a checksum record under the wrong key: corrupted.");
        if (!userMetadata.Remove(MetadataKey, out string? record)) return null;
        Dictionary<string, ulong> hashes = Parse(record, source);
        ulong metadataHash = Checksums.OfPairs(userMetadata);
        if (hashes[SafetensorsHeader.MetadataKey] != metadataHash)
            throw new QuantoFormatException(source, "checksum mismatch in __metadata__: the header is corrupted.");
        foreach (SafetensorsEntry entry in header.Entries)
        {
            if (!hashes.ContainsKey(entry.Name))
                throw new QuantoFormatException(source,
                    $"tensor '{entry.Name}' has no checksum: the header is corrupted.");
        }
        if (hashes.Count != header.Entries.Count + 1)
        {
            string missing = string.Join(", ", hashes.Keys.Where(k => k != SafetensorsHeader.MetadataKey &&
                header.Entries.All(e => e.Name != k)).Select(k => $"'{k}'"));
            throw new QuantoFormatException(source, $"checksums list tensors absent from the header: {missing}.");
        }
        return hashes;
    }
}
