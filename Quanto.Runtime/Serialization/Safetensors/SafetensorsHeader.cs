using System.Buffers.Binary;

namespace Quanto.Serialization;

/// <summary>
/// Parses and validates a safetensors header with the reference implementation's rules: an 8-byte little-endian
/// length, a JSON object (at most 100 MB), then a data section that the tensors' data_offsets cover exactly, with
/// no gap, no overlap and nothing left over. Every violation is a <see cref="QuantoFormatException"/>.
/// </summary>
internal sealed class SafetensorsHeader
{
    /// <summary>The reference reader's limit on header size (100 MB); guards against absurd allocations.</summary>
    internal const long MaxHeaderBytes = 100_000_000;

    /// <summary>The key holding free-form string metadata.</summary>
    internal const string MetadataKey = "__metadata__";

    private SafetensorsHeader(long headerBytes, IReadOnlyList<SafetensorsEntry> entries,
        IReadOnlyDictionary<string, SafetensorsEntry> byName, IReadOnlyDictionary<string, string> metadata)
    {
        HeaderBytes = headerBytes;
        Entries = entries;
        ByName = byName;
        Metadata = metadata;
    }

    /// <summary>The JSON header's byte length (the first 8 bytes of the file).</summary>
    internal long HeaderBytes { get; }

    /// <summary>Offset of the data section in the file.</summary>
    internal long DataStart => 8 + HeaderBytes;

    /// <summary>Tensors in order of their data (file order).</summary>
    internal IReadOnlyList<SafetensorsEntry> Entries { get; }

    /// <summary>The tensors by name.</summary>
    internal IReadOnlyDictionary<string, SafetensorsEntry> ByName { get; }

    /// <summary>The __metadata__ entries, as stored.</summary>
    internal IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Reads and validates the header at the start of a seekable stream.</summary>
    internal static SafetensorsHeader Read(Stream stream, string source)
    {
        long fileLength = stream.Length;
        if (fileLength < 8)
        {
            throw new QuantoFormatException(source,
                $"truncated: the file is {fileLength} bytes, shorter than the 8-byte header length.");
        }
        Span<byte> prefix = stackalloc byte[8];
        stream.Position = 0;
        stream.ReadExactly(prefix);
        ulong declared = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (declared > MaxHeaderBytes)
        {
            throw new QuantoFormatException(source,
                $"header length {declared} exceeds the {MaxHeaderBytes}-byte limit (corrupted length prefix?).");
        }
        long headerBytes = (long)declared;
        if (8 + headerBytes > fileLength)
        {
            throw new QuantoFormatException(source,
                $"header length {headerBytes} is larger than the file allows ({fileLength} bytes, " +
                $"{fileLength - 8} after the length prefix): truncated or corrupted.");
        }
        var json = new byte[headerBytes];
        stream.ReadExactly(json);
        // JsonDocument validates UTF-8 inside strings only when they are read; check it all here instead.
        if (!System.Text.Unicode.Utf8.IsValid(json))
            throw new QuantoFormatException(source, "header is not valid UTF-8 text.");
        if (headerBytes == 0 || json[0] != (byte)'{')
            throw new QuantoFormatException(source, "header is not a JSON object (it must start with '{').");
        var (entries, byName, metadata) = SafetensorsHeaderParser.Parse(json, source);
        long dataLength = fileLength - 8 - headerBytes;
        CheckCoverage(entries, dataLength, source);
        return new SafetensorsHeader(headerBytes, entries, byName, metadata);
    }

    /// <summary>Sorts entries by offset and checks they tile [0, dataLength) exactly.</summary>
    internal static void CheckCoverage(List<SafetensorsEntry> entries, long dataLength, string source)
    {
        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long expected = 0;
        SafetensorsEntry? previous = null;
        foreach (SafetensorsEntry entry in entries)
        {
            if (entry.End > dataLength)
            {
                throw new QuantoFormatException(source,
                    $"tensor '{entry.Name}': data_offsets [{entry.Begin}, {entry.End}] run past the end of the data " +
                    $"section ({dataLength} bytes): truncated or corrupted.");
            }
            if (entry.Begin < expected)
            {
                throw new QuantoFormatException(source,
                    $"tensors '{previous!.Name}' [{previous.Begin}, {previous.End}) and '{entry.Name}' " +
                    $"[{entry.Begin}, {entry.End}) overlap.");
            }
            if (entry.Begin > expected)
                throw new QuantoFormatException(source, $"data bytes [{expected}, {entry.Begin}) belong to no tensor.");
            expected = entry.End;
            previous = entry;
        }
        if (expected != dataLength)
        {
            throw new QuantoFormatException(source,
                $"{dataLength - expected} bytes after the last tensor belong to no tensor (the data section is " +
                $"{dataLength} bytes, the tensors cover {expected}).");
        }
    }
}
