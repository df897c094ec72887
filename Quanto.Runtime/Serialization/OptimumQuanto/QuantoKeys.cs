namespace Quanto.Serialization;

/// <summary>
/// optimum-quanto's state-dict key names for a quantized module at path <c>p</c>: <c>p.weight._data</c> and
/// <c>p.weight._scale</c> (int8, float8); <c>p.weight._data._data</c>, <c>p.weight._scale</c>,
/// <c>p.weight._shift</c> (int2, int4); <c>p.bias</c>, <c>p.input_scale</c>, <c>p.output_scale</c>.
/// </summary>
public static class QuantoKeys
{
    /// <summary>The float weight of a module that is not frozen (or not quantized).</summary>
    public const string Weight = "weight";

    /// <summary>The float bias (never quantized).</summary>
    public const string Bias = "bias";

    /// <summary>The static input activation scale (a scalar; 1.0 when not calibrated).</summary>
    public const string InputScale = "input_scale";

    /// <summary>The static output activation scale (a scalar; 1.0 when not calibrated).</summary>
    public const string OutputScale = "output_scale";

    /// <summary>8-bit codes, shaped like the weight.</summary>
    public const string Data = "weight._data";

    /// <summary>Packed 2/4-bit codes (the inner tensor of optimum-quanto's PackedTensor).</summary>
    public const string PackedData = "weight._data._data";

    /// <summary>The scale of a quantized weight.</summary>
    public const string Scale = "weight._scale";

    /// <summary>The shift of a 2/4-bit weight (float, or a uint8 zero-point).</summary>
    public const string Shift = "weight._shift";

    /// <summary>Joins a module path and a key: ("fc1", "bias") -> "fc1.bias"; the root module has path "".</summary>
    public static string Join(string modulePath, string key)
    {
        ArgumentNullException.ThrowIfNull(modulePath);
        return modulePath.Length == 0 ? key : modulePath + "." + key;
    }

    /// <summary>The keys a frozen quantized weight of <paramref name="qtype"/> occupies under a module path.</summary>
    public static IReadOnlyList<string> WeightKeys(string modulePath, QType qtype) => qtype.Info().IsPacked
        ? [Join(modulePath, PackedData), Join(modulePath, Scale), Join(modulePath, Shift)]
        : [Join(modulePath, Data), Join(modulePath, Scale)];
}
