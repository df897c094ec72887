using System.Buffers.Binary;
using System.Text.Json;
using static TorchSharp.torch;

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
        IReadOnlyDictionary<string, string> metadata)
    {
        HeaderBytes = headerBytes;
        Entries = entries;
        Metadata = metadata;
    }

    /// <summary>The JSON header's byte length (the first 8 bytes of the file).</summary>
    internal long HeaderBytes { get; }

    /// <summary>Offset of the data section in the file.</summary>
    internal long DataStart => 8 + HeaderBytes;

    /// <summary>Tensors in order of their data (file order).</summary>
    internal IReadOnlyList<SafetensorsEntry> Entries { get; }

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
        var (entries, metadata) = Parse(json, source);
        long dataLength = fileLength - 8 - headerBytes;
        CheckCoverage(entries, dataLength, source);
        return new SafetensorsHeader(headerBytes, entries, metadata);
    }

    private static (List<SafetensorsEntry>, Dictionary<string, string>) Parse(byte[] json, string source)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw new QuantoFormatException(source, $"header is not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new QuantoFormatException(source, "header is not a JSON object.");
            var entries = new List<SafetensorsEntry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (JsonProperty property in document.RootElement.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                    throw new QuantoFormatException(source, $"header lists key '{property.Name}' twice.");
                if (property.Name == MetadataKey) ReadMetadata(property.Value, metadata, source);
                else entries.Add(ReadEntry(property.Name, property.Value, source));
            }
            return (entries, metadata);
        }
    }

    private static void ReadMetadata(JsonElement value, Dictionary<string, string> metadata, string source)
    {
        if (value.ValueKind == JsonValueKind.Null) return;
        if (value.ValueKind != JsonValueKind.Object)
            throw new QuantoFormatException(source, "__metadata__ must be an object of strings.");
        foreach (JsonProperty item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
            {
                throw new QuantoFormatException(source,
                    $"__metadata__ value of '{item.Name}' is a {item.Value.ValueKind}, not a string.");
            }
            if (!metadata.TryAdd(item.Name, item.Value.GetString()!))
                throw new QuantoFormatException(source, $"__metadata__ lists key '{item.Name}' twice.");
        }
    }

    private static SafetensorsEntry ReadEntry(string name, JsonElement value, string source)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new QuantoFormatException(source, $"tensor '{name}': entry is a {value.ValueKind}, not an object.");
        string dtypeName = Field(name, value, "dtype", JsonValueKind.String, source).GetString()!;
        if (!SafetensorsDType.TryParse(dtypeName, out ScalarType dtype))
        {
            throw new QuantoFormatException(source,
                $"tensor '{name}': unknown dtype '{dtypeName}' " +
                $"(supported: {string.Join(", ", SafetensorsDType.Names)}).");
        }
        long[] shape = Longs(name, Field(name, value, "shape", JsonValueKind.Array, source), "shape", source);
        long[] offsets = Longs(name, Field(name, value, "data_offsets", JsonValueKind.Array, source), "data_offsets",
            source);
        if (offsets.Length != 2 || offsets[0] > offsets[1])
        {
            throw new QuantoFormatException(source,
                $"tensor '{name}': data_offsets must be [begin, end] with begin <= end; " +
                $"got [{string.Join(", ", offsets)}].");
        }
        long need;
        try
        {
            long count = shape.Aggregate(1L, (a, b) => checked(a * b));
            need = checked(count * SafetensorsDType.ElementSize(dtype));
        }
        catch (OverflowException)
        {
            throw new QuantoFormatException(source,
                $"tensor '{name}': shape [{string.Join(", ", shape)}] is too large.");
        }
        if (need != offsets[1] - offsets[0])
        {
            throw new QuantoFormatException(source,
                $"tensor '{name}': dtype {dtypeName} and shape [{string.Join(", ", shape)}] need {need} bytes, but " +
                $"data_offsets [{offsets[0]}, {offsets[1]}] hold {offsets[1] - offsets[0]}.");
        }
        return new SafetensorsEntry(name, dtype, shape, offsets[0], offsets[1]);
    }

    private static JsonElement Field(string name, JsonElement entry, string field, JsonValueKind kind, string source)
    {
        if (!entry.TryGetProperty(field, out JsonElement value))
            throw new QuantoFormatException(source, $"tensor '{name}': missing '{field}'.");
        if (value.ValueKind != kind)
            throw new QuantoFormatException(source,
                $"tensor '{name}': '{field}' is a {value.ValueKind}, not a {kind}.");
        return value;
    }

    private static long[] Longs(string name, JsonElement array, string field, string source)
    {
        int length = array.GetArrayLength();
        if (length > 64) throw new QuantoFormatException(source, $"tensor '{name}': '{field}' has {length} entries.");
        var values = new long[length];
        int i = 0;
        foreach (JsonElement item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long v) || v < 0)
            {
                throw new QuantoFormatException(source,
                    $"tensor '{name}': '{field}' must hold non-negative integers; got {item.GetRawText()}.");
            }
            values[i++] = v;
        }
        return values;
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
