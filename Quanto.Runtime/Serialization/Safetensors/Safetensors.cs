using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// Reads and writes safetensors files (https://github.com/huggingface/safetensors): single files, and sharded
/// checkpoints through <see cref="ShardedSafetensors"/>. Writes are atomic; reads validate everything and throw
/// <see cref="QuantoFormatException"/> for any malformed input.
/// </summary>
public static class Safetensors
{
    /// <summary>Loads every tensor of a file, in file order, with its metadata.</summary>
    /// <exception cref="QuantoFormatException">The file is malformed.</exception>
    public static StateDict Load(string path)
    {
        using SafetensorsFile file = SafetensorsFile.Open(path);
        return file.ReadAll();
    }

    /// <summary>Loads every tensor from a seekable stream holding a whole file.</summary>
    /// <param name="stream">The data; not disposed.</param>
    /// <param name="source">Name used in error messages.</param>
    public static StateDict Load(Stream stream, string source)
    {
        using SafetensorsFile file = SafetensorsFile.Open(stream, source);
        return file.ReadAll();
    }

    /// <summary>Saves tensors atomically: the old file stays intact if anything fails.</summary>
    /// <param name="path">Target file.</param>
    /// <param name="tensors">Names and tensors (any device, any layout; copied to contiguous CPU as needed).</param>
    /// <param name="metadata">Optional __metadata__ strings; "format": "pt" is added when absent.</param>
    /// <param name="checksums">Also store Quanto.NET's per-tensor checksums in the metadata (ignored by
    /// other readers).</param>
    /// <exception cref="ArgumentException">A name is repeated or reserved.</exception>
    /// <exception cref="NotSupportedException">A tensor's dtype has no safetensors name.</exception>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null, bool checksums = true)
    {
        var list = tensors.ToList(); // enumerate once, before the temporary file exists
        AtomicFile.Write(path, stream => SafetensorsWriter.Write(stream, list, metadata, checksums));
    }

    /// <summary>Saves a state dict (its tensors and metadata) atomically.</summary>
    public static void Save(string path, StateDict stateDict, bool checksums = true)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        Save(path, stateDict.Tensors, stateDict.Metadata, checksums);
    }

    /// <summary>Writes a complete file to a stream (not atomic: the caller owns the stream).</summary>
    public static void Write(Stream stream, IEnumerable<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null, bool checksums = true)
    {
        ArgumentNullException.ThrowIfNull(stream);
        SafetensorsWriter.Write(stream, tensors, metadata, checksums);
    }
}
