using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto.Models.HuggingFace;

/// <summary>The floating-point dtypes a model runs in, by their torch names as config.json writes them.</summary>
public static class DTypes
{
    /// <summary>float32, float16 or bfloat16 from "float32" / "float16" / "bfloat16" (also "fp32", "fp16", "bf16").
    /// </summary>
    /// <exception cref="QuantoFormatException">Another name.</exception>
    public static ScalarType Parse(string name, string source) => name switch
    {
        "float32" or "fp32" or "float" => ScalarType.Float32,
        "float16" or "fp16" or "half" => ScalarType.Float16,
        "bfloat16" or "bf16" => ScalarType.BFloat16,
        _ => throw new QuantoFormatException(source,
            $"dtype '{name}' is not supported; models run in float32, float16 or bfloat16."),
    };

    /// <summary>The torch name of a float dtype ("bfloat16").</summary>
    /// <exception cref="ArgumentException">Not a float dtype a model runs in.</exception>
    public static string Name(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.Float16 => "float16",
        ScalarType.BFloat16 => "bfloat16",
        _ => throw new ArgumentException($"Models run in float32, float16 or bfloat16, not {dtype}.", nameof(dtype)),
    };

    /// <summary>Checks a requested model dtype.</summary>
    /// <exception cref="ArgumentException">Not float32, float16 or bfloat16.</exception>
    public static void Check(ScalarType dtype) => _ = Name(dtype);
}
