using System.Text.Json;

namespace Quanto.Serialization;

/// <summary>
/// A commit's journal (see <see cref="FileSet"/>): the renames (temporary -> target) and deletions that make a save
/// visible, all plain names in the journal's folder. JSON: {"rename": [[temporary, target], ...], "delete": [...]}.
/// </summary>
/// <param name="Name">The journal's file name.</param>
/// <param name="Renames">Temporary file -> target, in order.</param>
/// <param name="Deletions">Files of the previous checkpoint to remove.</param>
internal sealed record Journal(string Name, IReadOnlyList<(string Temporary, string Target)> Renames,
    IReadOnlyList<string> Deletions)
{
    /// <summary>The journal file's text.</summary>
    internal byte[] ToBytes()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteStartArray("rename");
            foreach ((string temporary, string target) in Renames)
            {
                json.WriteStartArray();
                json.WriteStringValue(temporary);
                json.WriteStringValue(target);
                json.WriteEndArray();
            }
            json.WriteEndArray();
            json.WriteStartArray("delete");
            foreach (string name in Deletions) json.WriteStringValue(name);
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    /// <summary>Reads a journal, checking that it renames only our temporary files to files of its folder and
    /// deletes only checkpoint files there (a planted journal can do nothing else).</summary>
    /// <exception cref="QuantoFormatException">It is not such a journal.</exception>
    internal static Journal Read(string path)
    {
        using JsonDocument document = StrictJson.ParseFile(path, "commit journal");
        JsonElement root = StrictJson.RootObject(document, path, "commit journal");
        if (!root.TryGetProperty("rename", out JsonElement renames) || renames.ValueKind != JsonValueKind.Array ||
            !root.TryGetProperty("delete", out JsonElement deletions) || deletions.ValueKind != JsonValueKind.Array)
        {
            throw Bad(path, "it lacks its 'rename' and 'delete' lists");
        }
        var renameList = new List<(string, string)>();
        foreach (JsonElement pair in renames.EnumerateArray())
        {
            string?[] names = pair.ValueKind == JsonValueKind.Array
                ? pair.EnumerateArray().Select(StrictJson.StringOrNull).ToArray()
                : [];
            if (names is not [string temporary, string target] || !FileSet.TemporaryName().IsMatch(temporary) ||
                !FileSet.IsPlainName(target) || !FileSet.IsCheckpointFile(target))
            {
                throw Bad(path, $"rename {pair.GetRawText()} is not one of its temporary files to a checkpoint file");
            }
            renameList.Add((temporary, target));
        }
        var deletionList = new List<string>();
        foreach (JsonElement item in deletions.EnumerateArray())
        {
            string? name = StrictJson.StringOrNull(item);
            if (name is null || !FileSet.IsPlainName(name) || !FileSet.IsCheckpointFile(name))
                throw Bad(path, $"deletion {item.GetRawText()} is not a checkpoint file here");
            deletionList.Add(name);
        }
        return new Journal(Path.GetFileName(path), renameList, deletionList);
    }

    private static QuantoFormatException Bad(string path, string why) =>
        new(path, $"commit journal of an interrupted save is not valid ({why}); it was not written by Quanto.NET. " +
            "Remove it and check the checkpoint's files.");
}
