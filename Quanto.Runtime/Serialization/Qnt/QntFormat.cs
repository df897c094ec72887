namespace Quanto.Serialization;

/// <summary>
/// The .qnt package layout (MessagePack, one top-level map, keys in this order):
/// <code>
/// "magic": "quanto.qnt"
/// "version": [major, minor]          readers refuse a newer major; a newer minor only adds keys (skipped)
/// "metadata": {str: str}
/// "qmap": {module: {"weights": qtype | "none", "activations": qtype | "none"}}
/// "header_checksum": uint64           XxHash64 of metadata and qmap
/// "tensors": [ {"name", "dtype" (safetensors name), "shape": [int], "qtype": str | nil, "axis": int | nil,
///               "group_size": int | nil, "weight_shape": [int] | nil,
///               "checksum": uint64    XxHash64 of the fields above, then the bytes,
///               "data": [bin, ...]    raw little-endian bytes, chunks of at most 1 GiB} ]
/// </code>
/// </summary>
internal static class QntFormat
{
    internal const string Magic = "quanto.qnt";
    internal const int Major = 1;
    internal const int Minor = 0;

    /// <summary>Nesting limit when skipping unknown values (guards the stack against crafted input).</summary>
    internal const int MaxSkipDepth = 32;

    /// <summary>Starts a tensor checksum: the description, then the bytes are appended.</summary>
    internal static System.IO.Hashing.XxHash64 StartChecksum(string name, string dtype, IEnumerable<long> shape,
        QType? qtype, int? axis, int? groupSize, IEnumerable<long>? weightShape) =>
        Checksums.Start(name, dtype, Checksums.FormatShape(shape), qtype?.QuantoName(), Text(axis), Text(groupSize),
            weightShape is null ? null : Checksums.FormatShape(weightShape));

    private static string? Text(int? value) =>
        value?.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Checksum of the package header (metadata and quantization map).</summary>
    internal static ulong HeaderChecksum(IReadOnlyDictionary<string, string> metadata, QuantizationMap qmap)
    {
        var hash = Checksums.Start(Checksums.ToHex(Checksums.OfPairs(metadata)), qmap.ToJson());
        return hash.GetCurrentHashAsUInt64();
    }
}
