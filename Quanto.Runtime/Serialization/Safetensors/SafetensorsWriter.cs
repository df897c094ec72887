using System.Buffers.Binary;
using System.Text.Encodings.Web;
using System.Text.Json;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// Writes the safetensors format as the reference implementation does: tensors ordered by element size
/// (largest first) then by name, so larger types stay aligned; a compact JSON header with __metadata__ first,
/// padded with spaces to a multiple of 8 bytes; then the raw little-endian data.
/// </summary>
internal static class SafetensorsWriter
{
    /// <summary>Keeps names readable (no \u escapes for '+', non-ASCII...); JSON-escaping stays correct.</summary>
    internal static readonly JsonSerializerOptions JsonOptions =
        new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Writes a complete file to <paramref name="stream"/>.</summary>
    internal static void Write(Stream stream, IEnumerable<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata, bool checksums)
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors needs a little-endian host.");
        var items = Prepare(tensors);
        var contiguous = new List<Tensor>(items.Count);
        try
        {
            foreach (var (_, tensor) in items) contiguous.Add(TensorBytes.ContiguousCpu(tensor));
            var entries = new List<SafetensorsEntry>(items.Count);
            long offset = 0;
            for (int i = 0; i < items.Count; i++)
            {
                long length = TensorBytes.ByteCount(contiguous[i]);
                entries.Add(new SafetensorsEntry(items[i].Key, contiguous[i].dtype, contiguous[i].shape, offset,
                    offset + length));
                offset += length;
            }
            var meta = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (key, value) in metadata ?? new Dictionary<string, string>()) meta[key] = value;
            if (meta.ContainsKey(SafetensorsChecksums.MetadataKey))
            {
                throw new ArgumentException(
                    $"Metadata key '{SafetensorsChecksums.MetadataKey}' is reserved.", nameof(metadata));
            }
            meta.TryAdd("format", "pt"); // transformers refuses safetensors files without it
            if (checksums) meta[SafetensorsChecksums.MetadataKey] = ComputeChecksums(entries, contiguous, meta);
            byte[] header = Header(entries, meta);
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
            stream.Write(prefix);
            stream.Write(header);
            foreach (Tensor tensor in contiguous) TensorBytes.ForEachChunk(tensor, chunk => stream.Write(chunk));
        }
        finally
        {
            for (int i = 0; i < contiguous.Count; i++)
            {
                if (!ReferenceEquals(contiguous[i], items[i].Value)) contiguous[i].Dispose();
            }
        }
    }

    private static List<KeyValuePair<string, Tensor>> Prepare(IEnumerable<KeyValuePair<string, Tensor>> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var items = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in items)
        {
            ArgumentNullException.ThrowIfNull(tensor, name);
            if (name == SafetensorsHeader.MetadataKey || !names.Add(name))
                throw new ArgumentException($"Tensor name '{name}' is reserved or repeated.", nameof(tensors));
            SafetensorsDType.NameOf(tensor.dtype); // throws NotSupportedException for unsupported dtypes
        }
        // Reference order: descending element size, then name (ordinal, like Rust's string order).
        return items
            .OrderByDescending(p => SafetensorsDType.ElementSize(p.Value.dtype))
            .ThenBy(p => p.Key, StringComparer.Ordinal)
            .ToList();
    }

    private static string ComputeChecksums(List<SafetensorsEntry> entries, List<Tensor> tensors,
        Dictionary<string, string> metadata)
    {
        var hashes = new List<KeyValuePair<string, ulong>>(entries.Count);
        for (int i = 0; i < entries.Count; i++)
        {
            var hash = SafetensorsChecksums.Start(entries[i]);
            TensorBytes.ForEachChunk(tensors[i], chunk => hash.Append(chunk));
            hashes.Add(KeyValuePair.Create(entries[i].Name, hash.GetCurrentHashAsUInt64()));
        }
        return SafetensorsChecksums.Format(Checksums.OfPairs(metadata), hashes);
    }

    /// <summary>The JSON header, padded with spaces to a multiple of 8 bytes.</summary>
    internal static byte[] Header(IReadOnlyList<SafetensorsEntry> entries, IReadOnlyDictionary<string, string> metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JsonOptions.Encoder }))
        {
            json.WriteStartObject();
            if (metadata.Count > 0)
            {
                json.WriteStartObject(SafetensorsHeader.MetadataKey);
                foreach (var (key, value) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
                    json.WriteString(key, value);
                json.WriteEndObject();
            }
            foreach (SafetensorsEntry entry in entries)
            {
                json.WriteStartObject(entry.Name);
                json.WriteString("dtype", SafetensorsDType.NameOf(entry.DType));
                json.WriteStartArray("shape");
                foreach (long d in entry.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(entry.Begin);
                json.WriteNumberValue(entry.End);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        int padding = (int)((8 - buffer.Length % 8) % 8);
        for (int i = 0; i < padding; i++) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }
}
