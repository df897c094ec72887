using System.IO.Hashing;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Quanto.Serialization;

/// <summary>
/// Which files make up a checkpoint and how they are tied together.
/// <para>Names: weights <c>{base}.safetensors</c>, or shards <c>{base}-00001-of-0000N.safetensors</c> with
/// <c>{base}.safetensors.index.json</c>; the quantization map is <c>quanto_qmap.json</c> for base "model" (the
/// folder layout optimum-quanto's from_pretrained reads) and <c>{base}.quanto_qmap.json</c> otherwise, so two
/// checkpoints saved into one folder never share, or replace, one map.</para>
/// <para>The record: our writer stores <see cref="Record"/> (key <see cref="RecordKey"/>) in the metadata of the
/// file that names the set (the single weights file, or the index) — this save's generation id, the map's name and
/// the XxHash64 of its content — and the generation alone in each shard. Readers check them: a shard or map from
/// another save (a kill during an older version's save, a file copied from elsewhere) is refused instead of
/// loading a mix. optimum-quanto and other readers ignore both.</para>
/// </summary>
internal static class CheckpointFiles
{
    /// <summary>The metadata key of the record.</summary>
    internal const string RecordKey = "quanto_checkpoint";

    /// <summary>The base name optimum-quanto's folder layout uses.</summary>
    internal const string DefaultBase = "model";

    private const string Extension = ".safetensors";
    private const string IndexSuffix = ".safetensors.index.json";

    /// <summary>A save's record: its generation, and the map it wrote with its checksum (no map: null).</summary>
    internal sealed record Record(string Generation, string? Map, string? MapChecksum)
    {
        /// <summary>The record as the JSON text stored in metadata.</summary>
        internal string ToJson()
        {
            using var buffer = new MemoryStream();
            using (var json = new Utf8JsonWriter(buffer))
            {
                json.WriteStartObject();
                json.WriteString("generation", Generation);
                if (Map is not null) json.WriteString("qmap", Map);
                if (MapChecksum is not null) json.WriteString("qmap_xxh64", MapChecksum);
                json.WriteEndObject();
            }
            return Encoding.UTF8.GetString(buffer.ToArray());
        }

        /// <summary>The record in metadata, or null when the file has none (another writer, an older version).
        /// </summary>
        /// <exception cref="QuantoFormatException">The record is malformed.</exception>
        internal static Record? From(IReadOnlyDictionary<string, string> metadata, string source) =>
            metadata.TryGetValue(RecordKey, out string? text) ? Parse(text, source) : null;

        /// <summary>Parses the record's JSON text.</summary>
        internal static Record Parse(string text, string source)
        {
            using JsonDocument document = StrictJson.Parse(text, source, $"metadata '{RecordKey}'");
            return From(StrictJson.RootObject(document, source, $"metadata '{RecordKey}'"), source);
        }

        /// <summary>Reads the record from a JSON object (the index holds it as an object).</summary>
        internal static Record From(JsonElement record, string source)
        {
            if (record.ValueKind != JsonValueKind.Object)
            {
                throw new QuantoFormatException(source,
                    $"metadata '{RecordKey}' must be an object; found {record.GetRawText()}.");
            }
            string? Field(string name) =>
                record.TryGetProperty(name, out JsonElement v) ? StrictJson.StringOrNull(v) : null;
            string? generation = Field("generation"), map = Field("qmap"), checksum = Field("qmap_xxh64");
            if (generation is null || generation.Length != 32 || !generation.All(char.IsAsciiHexDigitLower) ||
                (map is null) != (checksum is null) || (map is not null && !FileSet.IsPlainName(map)))
            {
                throw new QuantoFormatException(source,
                    $"metadata '{RecordKey}' is not a valid record (generation, qmap, qmap_xxh64): " +
                    $"{record.GetRawText()}.");
            }
            return new Record(generation, map, checksum);
        }
    }

    /// <summary>The XxHash64 of a map's content, as written (16 hex digits).</summary>
    internal static string MapChecksum(QuantizationMap map) =>
        Checksums.ToHex(XxHash64.HashToUInt64(Encoding.UTF8.GetBytes(map.ToJson())));

    /// <summary>The map file a save of weights with this base name writes.</summary>
    internal static string MapFileFor(string baseName) =>
        baseName == DefaultBase ? QuantizationMap.FileName : baseName + "." + QuantizationMap.FileName;

    /// <summary>The index file of a sharded save with this base name.</summary>
    internal static string IndexFileFor(string baseName) => baseName + IndexSuffix;

    /// <summary>The shard file i (1-based) of n.</summary>
    internal static string ShardFileFor(string baseName, int i, int n) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{baseName}-{i:D5}-of-{n:D5}{Extension}");

    /// <summary>True for a shard file name of this base name (any count).</summary>
    internal static bool IsShardOf(string fileName, string baseName) =>
        Regex.IsMatch(fileName, "^" + Regex.Escape(baseName) + @"-[0-9]{5}-of-[0-9]{5}\.safetensors$");

    /// <summary>The base name of a weights path: "model" for model.safetensors and model.safetensors.index.json.
    /// </summary>
    /// <exception cref="ArgumentException">The path is neither (mlp.bin is refused, not read as safetensors).
    /// </exception>
    internal static string BaseNameOf(string path) => TryBaseNameOf(path) ?? throw new ArgumentException(
            $"{path}: unknown checkpoint extension '{Path.GetExtension(path)}'; use .safetensors (optimum-quanto's " +
            "layout, with its quantization map beside it), .safetensors.index.json (a sharded checkpoint), " +
            $"{QntPackage.Extension} (one self-describing package) or a folder.", nameof(path));

    /// <summary>The base name, or null for a path that is no weights file.</summary>
    internal static string? TryBaseNameOf(string path)
    {
        string name = Path.GetFileName(path);
        if (name.EndsWith(IndexSuffix, StringComparison.Ordinal) && name.Length > IndexSuffix.Length)
            return name[..^IndexSuffix.Length];
        if (name.EndsWith(Extension, StringComparison.Ordinal) && name.Length > Extension.Length)
            return name[..^Extension.Length];
        return null;
    }

    /// <summary>The file to read for a path: an index or single weights file (a folder: its model.* files). The
    /// .safetensors path a sharded checkpoint was saved to names its index.</summary>
    internal static string WeightsFileOf(string path)
    {
        if (!Directory.Exists(path))
        {
            string baseName = BaseNameOf(path); // refuses unknown extensions
            string sharded = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, IndexFileFor(baseName));
            return !File.Exists(path) && path.EndsWith(Extension, StringComparison.Ordinal) && File.Exists(sharded)
                ? sharded
                : path;
        }
        string index = Path.Combine(path, IndexFileFor(DefaultBase));
        return File.Exists(index) ? index : Path.Combine(path, DefaultBase + Extension);
    }

    /// <summary>True when the file's keys include a quantized module's (its scales or quantized weight parts).
    /// </summary>
    internal static bool HoldsQuantizedKeys(IEnumerable<string> keys) => keys.Any(k =>
        k == QuantoKeys.InputScale || k.EndsWith("." + QuantoKeys.InputScale, StringComparison.Ordinal) ||
        k.EndsWith(QuantoKeys.Scale, StringComparison.Ordinal));

    /// <summary>
    /// The map a checkpoint uses, and how it was found: the one its record names; else the one named after its
    /// weights; else the folder's quanto_qmap.json (what earlier versions and other tools wrote for any base name),
    /// but only for weights that hold quantized modules — a stray map never applies to a float file.
    /// </summary>
    /// <returns>The map's path and a phrase saying how it was chosen, or (null, why none).</returns>
    internal static (string? Path, string How) ResolveMap(string folder, string baseName, Record? record,
        bool holdsQuantizedKeys)
    {
        if (record?.Map is string recorded) return (Path.Combine(folder, recorded), "recorded by the weights");
        string named = Path.Combine(folder, MapFileFor(baseName));
        if (File.Exists(named)) return (named, "named after the weights");
        string shared = Path.Combine(folder, QuantizationMap.FileName);
        if (!File.Exists(shared)) return (null, $"no {MapFileFor(baseName)} beside the weights");
        return holdsQuantizedKeys
            ? (shared, "the folder's " + QuantizationMap.FileName)
            : (null, $"the folder's {QuantizationMap.FileName} is not used: these weights hold no quantized module");
    }

    /// <summary>Reads a map; <paramref name="stale"/> says why it is not the one the record names (another save's
    /// content), which a reader may see for a moment while a save renames its files.</summary>
    /// <exception cref="QuantoFormatException">The map is missing or malformed.</exception>
    internal static QuantizationMap LoadMap(string mapPath, Record? record, string weights, out string? stale)
    {
        if (!File.Exists(mapPath))
        {
            throw new QuantoFormatException(weights,
                $"the weights name their quantization map {Path.GetFileName(mapPath)}, which is missing.");
        }
        QuantizationMap map = QuantizationMap.LoadFile(mapPath);
        stale = record?.MapChecksum is string expected && MapChecksum(map) != expected
            ? $"{Path.GetFileName(mapPath)} is not the map {Path.GetFileName(weights)} was saved with (its content " +
              "hash differs): one of them was replaced by another save. Save the checkpoint again."
            : null;
        return map;
    }

    /// <summary>
    /// Refuses to save base "model" into a folder whose quanto_qmap.json belongs to another checkpoint: one with
    /// neither model.safetensors nor its index, as earlier versions wrote for any weights name.
    /// </summary>
    /// <exception cref="IOException">The map would be replaced.</exception>
    internal static void RefuseForeignMap(string folder, string baseName)
    {
        if (baseName != DefaultBase || !File.Exists(Path.Combine(folder, QuantizationMap.FileName))) return;
        if (File.Exists(Path.Combine(folder, DefaultBase + Extension)) ||
            File.Exists(Path.Combine(folder, IndexFileFor(DefaultBase))))
        {
            return; // the map of the checkpoint being replaced
        }
        string[] others = Directory.EnumerateFiles(folder, "*" + Extension).Select(Path.GetFileName).OfType<string>()
            .Order(StringComparer.Ordinal).Take(3).ToArray();
        throw new IOException(
            $"{Path.Combine(folder, QuantizationMap.FileName)} belongs to another checkpoint (there is no " +
            $"model.safetensors beside it{(others.Length > 0 ? "; weights here: " + string.Join(", ", others) : "")}" +
            "), and saving model.safetensors would replace it. Save into another folder or under another name, or " +
            "remove that map.");
    }
}
