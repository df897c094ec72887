using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Quanto.Serialization;

/// <summary>
/// Parses the small JSON documents of a checkpoint (quanto_qmap.json, the shard index, JSON held in metadata) so
/// that every malformed input is a <see cref="QuantoFormatException"/>: text that is not UTF-8, JSON syntax errors,
/// nesting deeper than the format needs, and a key repeated in one object (which JSON parsers resolve differently:
/// Python keeps the last, System.Text.Json's nodes throw, so such a file means different things to different tools).
/// </summary>
internal static class StrictJson
{
    /// <summary>Nesting limit: the deepest document here (the index) needs 3 levels.</summary>
    internal const int MaxDepth = 16;

    /// <summary>Parses UTF-8 bytes (a leading byte-order mark is skipped); the caller disposes the document.</summary>
    /// <param name="utf8">The text.</param>
    /// <param name="source">The file, for error messages.</param>
    /// <param name="what">What the text is ("quantization map"), for error messages.</param>
    /// <exception cref="QuantoFormatException">Not UTF-8, not JSON, too deep, or a repeated key.</exception>
    internal static JsonDocument Parse(ReadOnlyMemory<byte> utf8, string source, string what)
    {
        if (utf8.Span.StartsWith(Encoding.UTF8.Preamble)) utf8 = utf8[Encoding.UTF8.Preamble.Length..];
        if (!Utf8.IsValid(utf8.Span)) throw new QuantoFormatException(source, $"{what} is not valid UTF-8 text.");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(utf8, new JsonDocumentOptions { MaxDepth = MaxDepth });
        }
        catch (JsonException e)
        {
            throw new QuantoFormatException(source, $"{what} is not valid JSON: {e.Message}", e);
        }
        try
        {
            CheckUnique(document.RootElement, source, what, "");
            return document;
        }
        catch
        {
            document.Dispose();
            throw;
        }
    }

    /// <summary>Parses text held in a string (metadata values).</summary>
    internal static JsonDocument Parse(string text, string source, string what) =>
        Parse(Encoding.UTF8.GetBytes(text), source, what);

    /// <summary>Reads and parses a whole file.</summary>
    internal static JsonDocument ParseFile(string path, string what) => Parse(File.ReadAllBytes(path), path, what);

    /// <summary>The root, checked to be an object.</summary>
    /// <exception cref="QuantoFormatException">The root is another kind of value.</exception>
    internal static JsonElement RootObject(JsonDocument document, string source, string what)
    {
        JsonElement root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            throw new QuantoFormatException(source, $"{what} must be a JSON object; found {Kind(root)}.");
        return root;
    }

    /// <summary>A string value, or null when the element is another kind.</summary>
    internal static string? StringOrNull(JsonElement element) =>
        element.ValueKind == JsonValueKind.String ? element.GetString() : null;

    /// <summary>"an array", "a number"... for messages.</summary>
    internal static string Kind(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    /// <summary>Walks the document once: repeated keys, and strings whose escapes do not decode (a lone
    /// surrogate such as \ud800, which the parser accepts and GetString refuses).</summary>
    private static void CheckUnique(JsonElement element, string source, string what, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var names = new HashSet<string>(StringComparer.Ordinal);
                foreach (JsonProperty property in element.EnumerateObject())
                {
                    string name = Decode(() => property.Name, source, what, path);
                    string at = path.Length == 0 ? $"'{name}'" : $"{path} > '{name}'";
                    if (!names.Add(name)) throw new QuantoFormatException(source, $"{what} lists the key {at} twice.");
                    CheckUnique(property.Value, source, what, at);
                }
                break;
            case JsonValueKind.Array:
                foreach (JsonElement item in element.EnumerateArray()) CheckUnique(item, source, what, path);
                break;
            case JsonValueKind.String:
                Decode(element.GetString, source, what, path);
                break;
        }
    }

    private static string Decode(Func<string?> read, string source, string what, string path)
    {
        try
        {
            return read() ?? "";
        }
        catch (InvalidOperationException e)
        {
            string at = path.Length == 0 ? "" : $" at {path}";
            throw new QuantoFormatException(source,
                $"{what} holds a string{at} that is not valid text: {e.Message}", e);
        }
    }
}
