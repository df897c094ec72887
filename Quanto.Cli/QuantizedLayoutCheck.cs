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
    public static List<string> Check(IReadOnlyDictionary<string, SafetensorsEntry> entries, QuantizationMap? map,
        string source)
    {
        var problems = new List<string>();
        var quantizedModules = entries.Keys.Select(ModuleOf).OfType<string>().ToHashSet(StringComparer.Ordinal);
        if (map is null)
        {
            if (quantizedModules.Count > 0)
                problems.Add($"{source}: {quantizedModules.Count} module(s) hold quantized weights (e.g. " +
                    $"'{quantizedModules.First()}') but there is no {QuantizationMap.FileName} beside the weights.");
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
        QTypeInfo info = qtype.Info();
        string prefix = $"{source}: module '{module}' ({qtype.QuantoName()})";
        var missing = QuantoKeys.WeightKeys(module, qtype).Where(k => !entries.ContainsKey(k)).ToList();
        if (missing.Count > 0)
        {
            yield return $"{prefix}: missing {string.Join(", ", missing.Select(k => $"'{k}'"))}" +
                (entries.ContainsKey(QuantoKeys.Join(module, QuantoKeys.Weight)) ? " (the weight is still float)." : ".");
            yield break;
        }
        SafetensorsEntry scale = entries[QuantoKeys.Join(module, QuantoKeys.Scale)];
        if (scale.DType is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))
            yield return $"{prefix}: scale is {SafetensorsDType.NameOf(scale.DType)}, expected F32, F16 or BF16.";
        if (scale.Shape.Count == 0 || scale.Shape.Skip(1).Any(d => d != 1))
            yield return $"{prefix}: scale shape {TextTable.Shape(scale.Shape)} is not (n, 1, ...).";
        if (!info.IsPacked)
        {
            SafetensorsEntry data = entries[QuantoKeys.Join(module, QuantoKeys.Data)];
            if (data.DType != info.Storage)
                yield return $"{prefix}: data is {SafetensorsDType.NameOf(data.DType)}, expected " +
                    $"{SafetensorsDType.NameOf(info.Storage)}.";
            if (data.Shape.Count != scale.Shape.Count || data.Shape.Count < 2 || data.Shape[0] != scale.Shape[0])
                yield return $"{prefix}: data {TextTable.Shape(data.Shape)} and scale " +
                    $"{TextTable.Shape(scale.Shape)} disagree (expected one scale per output channel).";
            yield break;
        }
        SafetensorsEntry packed = entries[QuantoKeys.Join(module, QuantoKeys.PackedData)];
        SafetensorsEntry shift = entries[QuantoKeys.Join(module, QuantoKeys.Shift)];
        if (packed.DType != ScalarType.Byte)
            yield return $"{prefix}: packed data is {SafetensorsDType.NameOf(packed.DType)}, expected U8.";
        if (shift.DType != ScalarType.Byte && shift.DType != scale.DType)
            yield return $"{prefix}: shift is {SafetensorsDType.NameOf(shift.DType)}, expected U8 or the scale's " +
                $"{SafetensorsDType.NameOf(scale.DType)}.";
        if (!shift.Shape.SequenceEqual(scale.Shape))
            yield return $"{prefix}: shift {TextTable.Shape(shift.Shape)} and scale {TextTable.Shape(scale.Shape)} " +
                "differ.";
        long rows = scale.Shape.Count > 0 ? scale.Shape[0] : 0;
        long perByte = 8 / info.Bits;
        if (packed.Shape.Count < 2 || packed.Shape[0] != (rows + perByte - 1) / perByte)
            yield return $"{prefix}: packed data {TextTable.Shape(packed.Shape)} does not hold {rows} group(s) " +
                $"of {info.Bits}-bit codes ({perByte} per byte along dim 0).";
    }
}
