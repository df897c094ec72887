using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>The safetensors dtype names and the libtorch scalar types they map to.</summary>
public static class SafetensorsDType
{
    private static readonly (string Name, ScalarType Type)[] Table =
    [
        ("F64", ScalarType.Float64),
        ("F32", ScalarType.Float32),
        ("F16", ScalarType.Float16),
        ("BF16", ScalarType.BFloat16),
        ("I64", ScalarType.Int64),
        ("I32", ScalarType.Int32),
        ("I16", ScalarType.Int16),
        ("I8", ScalarType.Int8),
        ("U8", ScalarType.Byte),
        ("BOOL", ScalarType.Bool),
        ("F8_E4M3", QTypes.Float8E4M3Fn),
        ("F8_E5M2", QTypes.Float8E5M2),
        ("F8_E4M3FNUZ", QTypes.Float8E4M3Fnuz),
    ];

    /// <summary>The dtype names this reader and writer support.</summary>
    public static IReadOnlyList<string> Names { get; } = Table.Select(entry => entry.Name).ToArray();

    /// <summary>The scalar type for a safetensors dtype name; false when unknown.</summary>
    public static bool TryParse(string? name, out ScalarType type)
    {
        foreach ((string n, ScalarType t) in Table)
        {
            if (string.Equals(n, name, StringComparison.Ordinal))
            {
                type = t;
                return true;
            }
        }
        type = default;
        return false;
    }

    /// <summary>The safetensors name of a scalar type.</summary>
    /// <exception cref="NotSupportedException">The type has no safetensors name here.</exception>
    public static string NameOf(ScalarType type)
    {
        foreach ((string n, ScalarType t) in Table)
        {
            if (t == type) return n;
        }
        throw new NotSupportedException(
            $"dtype {type} cannot be stored in safetensors here; supported: {string.Join(", ", Names)}.");
    }

    /// <summary>Bytes per element of a supported scalar type.</summary>
    public static int ElementSize(ScalarType type) => (int)QuantizedWeight.ElementSize(type);
}
