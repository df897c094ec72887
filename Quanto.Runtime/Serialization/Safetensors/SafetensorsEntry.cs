using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>One tensor's description in a safetensors header.</summary>
/// <param name="Name">The key.</param>
/// <param name="DType">Element type.</param>
/// <param name="Shape">Dimensions (empty for a scalar).</param>
/// <param name="Begin">Start of the data, relative to the end of the header (data_offsets[0]).</param>
/// <param name="End">End of the data, exclusive (data_offsets[1]).</param>
public sealed record SafetensorsEntry(string Name, ScalarType DType, IReadOnlyList<long> Shape, long Begin, long End)
{
    /// <summary>Byte length of the data.</summary>
    public long ByteLength => End - Begin;

    /// <summary>The shape as an array (for TorchSharp calls).</summary>
    public long[] ShapeArray => Shape.ToArray();
}
