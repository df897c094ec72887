using System.Text.Json;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// Parses a safetensors header in one forward pass (Utf8JsonReader, no document tree), so the work and memory a
/// header costs stay proportional to its size: one <see cref="SafetensorsEntry"/> per tensor and nothing else. A
/// 48 MB header of 700,000 one-byte tensors is the case this guards (issue 19: a tree of it took 980 MB).
/// Rules: the reference reader's (a JSON object of entries {"dtype", "shape", "data_offsets"}, unknown fields
/// ignored, "__metadata__" an object of strings) plus no key repeated at any level.
/// </summary>
internal static class SafetensorsHeaderParser
{
    /// <summary>The deepest a valid header nests: root, entry, array.</summary>
    private const int MaxDepth = 3;

    /// <summary>Longest shape accepted (the format has no limit; 64 is far beyond any tensor).</summary>
    private const int MaxRank = 64;

    /// <summary>The entries in header order (with a by-name index) and the metadata.</summary>
    internal static (List<SafetensorsEntry> Entries, Dictionary<string, SafetensorsEntry> ByName,
        Dictionary<string, string> Metadata) Parse(ReadOnlySpan<byte> json, string source)
    {
        var entries = new List<SafetensorsEntry>();
        var byName = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        bool sawMetadata = false;
        var options = new JsonReaderOptions { MaxDepth = MaxDepth };
        try
        {
            // A syntax pass first (no allocation), so a header that is not JSON is reported as such wherever the
            // error is, before any entry is judged.
            var syntax = new Utf8JsonReader(json, options);
            while (syntax.Read())
            {
                // tokens only
            }
        }
        catch (JsonException e)
        {
            throw new QuantoFormatException(source, $"header is not valid JSON: {e.Message}", e);
        }
        var reader = new Utf8JsonReader(json, options);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                throw new QuantoFormatException(source, "header is not a JSON object.");
            while (Next(ref reader) == JsonTokenType.PropertyName)
            {
                string name = reader.GetString()!;
                reader.Read();
                if (name == SafetensorsHeader.MetadataKey)
                {
                    if (sawMetadata) throw new QuantoFormatException(source, $"header lists key '{name}' twice.");
                    sawMetadata = true;
                    ReadMetadata(ref reader, metadata, source);
                    continue;
                }
                if (byName.ContainsKey(name))
                    throw new QuantoFormatException(source, $"header lists key '{name}' twice.");
                SafetensorsEntry entry = ReadEntry(ref reader, name, source);
                entries.Add(entry);
                byName.Add(name, entry);
            }
            if (reader.Read()) throw new QuantoFormatException(source, "header has data after its JSON object.");
        }
        catch (JsonException e)
        {
            throw new QuantoFormatException(source, $"header is not valid JSON: {e.Message}", e);
        }
        catch (InvalidOperationException e)
        {
            // GetString on an escape that decodes to no text (a lone surrogate, \ud800).
            throw new QuantoFormatException(source, $"header holds a string that is not valid text: {e.Message}", e);
        }
        return (entries, byName, metadata);
    }

    private static JsonTokenType Next(ref Utf8JsonReader reader)
    {
        if (!reader.Read()) throw new JsonException("The JSON ends early.");
        return reader.TokenType;
    }

    private static void ReadMetadata(ref Utf8JsonReader reader, Dictionary<string, string> metadata, string source)
    {
        if (reader.TokenType == JsonTokenType.Null) return;
        if (reader.TokenType != JsonTokenType.StartObject)
            throw new QuantoFormatException(source, "__metadata__ must be an object of strings.");
        while (Next(ref reader) == JsonTokenType.PropertyName)
        {
            string key = reader.GetString()!;
            if (Next(ref reader) != JsonTokenType.String)
            {
                throw new QuantoFormatException(source,
                    $"__metadata__ value of '{key}' is a {Kind(reader.TokenType)}, not a string.");
            }
            if (!metadata.TryAdd(key, reader.GetString()!))
                throw new QuantoFormatException(source, $"__metadata__ lists key '{key}' twice.");
        }
    }

    /// <summary>One entry; field names and the dtype are compared as UTF-8 in place (a header of 10^6 entries
    /// must not allocate a string per field).</summary>
    private static SafetensorsEntry ReadEntry(ref Utf8JsonReader reader, string name, string source)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new QuantoFormatException(source,
                $"tensor '{name}': entry is a {Kind(reader.TokenType)}, not an object.");
        }
        ScalarType? dtype = null;
        long[]? shape = null;
        (long Begin, long End)? offsets = null;
        Span<long> buffer = stackalloc long[MaxRank];
        while (Next(ref reader) == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("dtype"u8))
            {
                if (dtype is not null) throw Twice(name, "dtype", source);
                reader.Read();
                dtype = DType(ref reader, name, source);
            }
            else if (reader.ValueTextEquals("shape"u8))
            {
                if (shape is not null) throw Twice(name, "shape", source);
                reader.Read();
                shape = buffer[..Longs(ref reader, name, "shape", source, buffer)].ToArray();
            }
            else if (reader.ValueTextEquals("data_offsets"u8))
            {
                if (offsets is not null) throw Twice(name, "data_offsets", source);
                reader.Read();
                int n = Longs(ref reader, name, "data_offsets", source, buffer);
                if (n != 2 || buffer[0] > buffer[1])
                {
                    throw new QuantoFormatException(source,
                        $"tensor '{name}': data_offsets must be [begin, end] with begin <= end; " +
                        $"got [{string.Join(", ", buffer[..n].ToArray())}].");
                }
                offsets = (buffer[0], buffer[1]);
            }
            else
            {
                reader.Read();
                reader.Skip(); // the reference reader ignores fields it does not know
            }
        }
        if (dtype is null) throw new QuantoFormatException(source, $"tensor '{name}': missing 'dtype'.");
        if (shape is null) throw new QuantoFormatException(source, $"tensor '{name}': missing 'shape'.");
        if (offsets is null) throw new QuantoFormatException(source, $"tensor '{name}': missing 'data_offsets'.");
        return Describe(name, dtype.Value, shape, offsets.Value.Begin, offsets.Value.End, source);
    }

    private static QuantoFormatException Twice(string name, string field, string source) =>
        new(source, $"tensor '{name}': '{field}' appears twice.");

    private static ScalarType DType(ref Utf8JsonReader reader, string name, string source)
    {
        if (reader.TokenType != JsonTokenType.String)
            throw FieldKind(name, "dtype", reader.TokenType, "String", source);
        foreach (string candidate in SafetensorsDType.Names)
        {
            if (reader.ValueTextEquals(candidate) && SafetensorsDType.TryParse(candidate, out ScalarType type))
                return type;
        }
        throw new QuantoFormatException(source,
            $"tensor '{name}': unknown dtype '{reader.GetString()}' " +
            $"(supported: {string.Join(", ", SafetensorsDType.Names)}).");
    }

    private static SafetensorsEntry Describe(string name, ScalarType dtype, long[] shape, long begin, long end,
        string source)
    {
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
        if (need != end - begin)
        {
            throw new QuantoFormatException(source,
                $"tensor '{name}': dtype {SafetensorsDType.NameOf(dtype)} and shape [{string.Join(", ", shape)}] " +
                $"need {need} bytes, but data_offsets [{begin}, {end}] hold {end - begin}.");
        }
        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    /// <summary>Reads an array of non-negative integers into <paramref name="values"/>; returns the count.</summary>
    private static int Longs(ref Utf8JsonReader reader, string name, string field, string source,
        scoped Span<long> values)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
            throw FieldKind(name, field, reader.TokenType, "Array", source);
        int count = 0;
        while (Next(ref reader) != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out long v) || v < 0)
            {
                throw new QuantoFormatException(source,
                    $"tensor '{name}': '{field}' must hold non-negative integers; got {Text(ref reader)}.");
            }
            if (count == values.Length)
            {
                throw new QuantoFormatException(source,
                    $"tensor '{name}': '{field}' has more than {values.Length} entries.");
            }
            values[count++] = v;
        }
        return count;
    }

    private static QuantoFormatException FieldKind(string name, string field, JsonTokenType found, string expected,
        string source) =>
        new(source, $"tensor '{name}': '{field}' is a {Kind(found)}, not a {expected}.");

    private static string Text(ref Utf8JsonReader reader) => reader.TokenType switch
    {
        JsonTokenType.StartArray => "an array",
        JsonTokenType.StartObject => "an object",
        _ => System.Text.Encoding.UTF8.GetString(reader.ValueSpan),
    };

    private static string Kind(JsonTokenType token) => token switch
    {
        JsonTokenType.StartObject => "Object",
        JsonTokenType.StartArray => "Array",
        JsonTokenType.String => "String",
        JsonTokenType.Number => "Number",
        JsonTokenType.True or JsonTokenType.False => "Boolean",
        _ => "Null",
    };
}
