using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto.Cli;

/// <summary>
/// Checks, from the headers alone, that a safetensors checkpoint and its quantization map agree: every quantized
/// module has its optimum-quanto keys with the right dtypes and consistent shapes, and every quantized key belongs
/// to a module in the map.
/// </summary>
public static class QuantizedLayoutCheck
{
    private static readonly string[] WeightParts =
        [QuantoKeys.PackedData, QuantoKeys.Data, QuantoKeys.Scale, QuantoKeys.Shift];

    /// <summary>The module of a quantized-weight key ("fc1.weight._scale" -> "fc1"); null for other keys.</summary>
    public static string? ModuleOf(string key)
    {
        foreach (string part in WeightParts)
        {
            if (key == part) return "";
            if (key.EndsWith("." + part, StringComparison.Ordinal)) return key[..^(part.Length + 1)];
        }
        return null;
    }

    /// <summary>The problems found; empty when the checkpoint and map agree.</summary>
    /// <param name="entries">The checkpoint's tensors.</param>
    /// <param name="map">Its quantization map, if one was found.</param>
    /// <param name="source">The checkpoint, for messages.</param>
    /// <param name="mapFile">The map's expected file name, for the message when there is none.</param>
    public static List<string> Check(IReadOnlyDictionary<string, SafetensorsEntry> entries, QuantizationMap? map,
        string source, string mapFile = QuantizationMap.FileName)
    {
        var problems = new List<string>();
        var quantizedModules = entries.Keys.Select(ModuleOf).OfType<string>().ToHashSet(StringComparer.Ordinal);
        if (map is null)
        {
            if (quantizedModules.Count > 0)
                problems.Add($"{source}: {quantizedModules.Count} module(s) hold quantized weights (e.g. " +
                    $"'{quantizedModules.First()}') but there is no {mapFile} beside the weights.");
            return problems;
        }
        foreach (string module in quantizedModules)
        {
            if (!map.TryGet(module, out QuantizationSpec spec) || spec.Weights is null)
                problems.Add($"{source}: module '{module}' holds quantized weight tensors but the map does not " +
                    "give it a weight qtype.");
        }
        foreach (var (module, spec) in map)
        {
            if (spec.Weights is QType qtype) problems.AddRange(CheckModule(entries, module, qtype, source));
        }
        return problems;
    }

    private static IEnumerable<string> CheckModule(IReadOnlyDictionary<string, SafetensorsEntry> entries,
        string module, QType qtype, string source)
    {
        string prefix = $"{source}: module '{module}' ({qtype.QuantoName()})";
        var missing = QuantoKeys.WeightKeys(module, qtype).Where(k => !entries.ContainsKey(k)).ToList();
        if (missing.Count > 0)
        {
            yield return $"{prefix}: missing {string.Join(", ", missing.Select(k => $"'{k}'"))}" +
                (entries.ContainsKey(QuantoKeys.Join(module, QuantoKeys.Weight))
                    ? " (the weight is still float)."
                    : ".");
            yield break;
        }
        WeightLayout? layout = InferLayout(entries, module, qtype);
        WeightFileForm? form = layout?.Match(key => entries[key].Shape);
        if (layout is null || form is null)
        {
            string held = string.Join(", ", QuantoKeys.WeightKeys(module, qtype)
                .Select(k => $"{Part(module, k)} {TextTable.Shape(entries[k].Shape)}"));
            yield return $"{prefix}: the shapes {held} do not form optimum-quanto's layout of any weight.";
            yield break;
        }
        ScalarType scaleDType = entries[QuantoKeys.Join(module, QuantoKeys.Scale)].DType;
        foreach (WeightFilePart part in form.Parts)
        {
            ScalarType dtype = entries[part.Key].DType;
            if (layout.DTypeProblem(part.Role, dtype, scaleDType) is string expected)
            {
                yield return $"{prefix}: {Part(module, part.Key)} is {SafetensorsDType.NameOf(dtype)}, " +
                    $"expected {expected}.";
            }
        }
    }

    /// <summary>
    /// The headers do not give the float weight's shape, so it is inferred (8-bit: the codes' shape; 2/4-bit: the
    /// scale's rows, then the codes' other dimensions, read as per channel: a grouped weight has the same shapes as
    /// one row per group) and the runtime's <see cref="WeightLayout"/> says which file forms that weight has.
    /// </summary>
    private static WeightLayout? InferLayout(IReadOnlyDictionary<string, SafetensorsEntry> entries, string module,
        QType qtype)
    {
        IReadOnlyList<long> codes = entries[QuantoKeys.WeightKeys(module, qtype)[0]].Shape;
        IReadOnlyList<long> scale = entries[QuantoKeys.Join(module, QuantoKeys.Scale)].Shape;
        if (codes.Count < 2 || (qtype.Info().IsPacked && scale.Count == 0)) return null;
        long[] shape = qtype.Info().IsPacked ? [scale[0], .. codes.Skip(1)] : codes.ToArray();
        long row = shape.Skip(1).Aggregate(1L, (a, b) => b == 0 || a <= long.MaxValue / b ? a * b : 0);
        try
        {
            return WeightLayout.For(module, qtype, shape, (int)Math.Clamp(row, 0, int.MaxValue));
        }
        catch (ArgumentException)
        {
            return null; // no weight has these shapes
        }
    }

    /// <summary>A key without its module prefix: "weight._scale".</summary>
    private static string Part(string module, string key) => module.Length == 0 ? key : key[(module.Length + 1)..];
}
