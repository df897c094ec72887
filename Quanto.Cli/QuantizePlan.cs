using Quanto.Nn;
using Quanto.Quantization;
using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto.Cli;

/// <summary>What happens to one input tensor.</summary>
/// <param name="Source">The input tensor.</param>
/// <param name="Module">The module path for a quantized weight ("" otherwise).</param>
/// <param name="GroupSize">Group size used (qint2/qint4), else null.</param>
/// <param name="KeepReason">Why the tensor stays as it is; null when it is quantized.</param>
public sealed record PlannedTensor(SourceTensor Source, string Module, int? GroupSize, string? KeepReason)
{
    /// <summary>True when the tensor is quantized.</summary>
    public bool Quantized => KeepReason is null;
}

/// <summary>
/// Decides, from the headers alone, which tensors are quantized: float (F32, F16, BF16) weights of a rank the
/// registry of layer kinds quantizes by default (<see cref="LayerKinds.CliWeightRanks"/>: 2 for Linear, 4 for Conv2d)
/// whose key ends in <c>.weight</c>, whose module path matches an --include pattern (when
/// any is given) and no --exclude pattern (fnmatch). Everything else is copied unchanged.
/// </summary>
public static class QuantizePlan
{
    private const string WeightSuffix = "." + QuantoKeys.Weight;

    /// <summary>Plans every tensor of <paramref name="source"/>.</summary>
    /// <exception cref="QuantoFormatException">The input is already quantized, or a weight cannot be written in the
    /// chosen format.</exception>
    public static List<PlannedTensor> Build(CheckpointSource source, QuantizeOptions options)
    {
        string[] quantizedKeys = source.Tensors.Select(t => t.Name)
            .Where(n => n.EndsWith("." + QuantoKeys.Data, StringComparison.Ordinal) ||
                        n.EndsWith("." + QuantoKeys.Scale, StringComparison.Ordinal))
            .Take(3).ToArray();
        if (quantizedKeys.Length > 0)
        {
            throw new QuantoFormatException(source.Path, "already quantized (keys such as " +
                string.Join(", ", quantizedKeys.Select(k => $"'{k}'")) + "); quantize the float checkpoint instead.");
        }
        var plan = source.Tensors.Select(t => PlanOne(t, options)).ToList();
        if (options.Format == OutputFormat.Safetensors) CheckReaderGroupSizes(source, plan, options);
        return plan;
    }

    private static PlannedTensor PlanOne(SourceTensor tensor, QuantizeOptions options)
    {
        SafetensorsEntry e = tensor.Entry;
        if (!e.Name.EndsWith(WeightSuffix, StringComparison.Ordinal) && e.Name != QuantoKeys.Weight)
            return new PlannedTensor(tensor, "", null, "not *.weight");
        string module = e.Name == QuantoKeys.Weight ? "" : e.Name[..^WeightSuffix.Length];
        if (e.DType is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))
            return new PlannedTensor(tensor, module, null, $"{SafetensorsDType.NameOf(e.DType)} is not F32/F16/BF16");
        if (!LayerKinds.CliWeightRanks.ContainsKey(e.Shape.Count))
            return new PlannedTensor(tensor, module, null, $"{e.Shape.Count}-D");
        if (e.Shape.Any(d => d == 0)) return new PlannedTensor(tensor, module, null, "empty");
        if (options.Include.Count > 0 && !options.Include.Any(p => Fnmatch.IsMatch(module, p)))
            return new PlannedTensor(tensor, module, null, "not included");
        if (options.Exclude.Any(p => Fnmatch.IsMatch(module, p)))
            return new PlannedTensor(tensor, module, null, "excluded");
        int? group = options.Weights.Info().IsPacked ? GroupSize.Resolve(RowLength(e), options.GroupSize) : null;
        return new PlannedTensor(tensor, module, group, null);
    }

    /// <summary>The ranks quantized, in words: "2-D (Linear) or 4-D (Conv2d)".</summary>
    public static string DescribeRanks()
    {
        string[] ranks = LayerKinds.CliWeightRanks.OrderBy(r => r.Key)
            .Select(r => $"{r.Key}-D ({string.Join(", ", r.Value.Select(k => k.Name))})").ToArray();
        return ranks.Length < 2 ? string.Concat(ranks) : string.Join(", ", ranks[..^1]) + " or " + ranks[^1];
    }

    /// <summary>Elements per output row (in_features, or in*kh*kw).</summary>
    public static long RowLength(SafetensorsEntry entry) => entry.Shape.Skip(1).Aggregate(1L, (a, b) => a * b);

    /// <summary>optimum-quanto readers re-derive the group size from the shape with 128: refuse others up front.</summary>
    private static void CheckReaderGroupSizes(CheckpointSource source, List<PlannedTensor> plan,
        QuantizeOptions options)
    {
        var bad = plan.Where(p => p.GroupSize is int g && g != GroupSize.Resolve(RowLength(p.Source.Entry)))
            .ToList();
        if (bad.Count == 0) return;
        PlannedTensor first = bad[0];
        throw new QuantoFormatException(source.Path,
            $"--group {options.GroupSize} gives {bad.Count} weight(s) a group size that optimum-quanto readers " +
            $"cannot re-derive (e.g. '{first.Source.Name}' {TextTable.Shape(first.Source.Entry.Shape)}: " +
            $"{first.GroupSize}, readers expect {GroupSize.Resolve(RowLength(first.Source.Entry))}); " +
            "write a .qnt package (--format qnt), which stores the group size, or use --group 128.");
    }
}
