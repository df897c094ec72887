using System.Globalization;
using Quanto.Nn;
using Quanto.Tensors;

namespace Quanto;

/// <summary>One module that was quantized.</summary>
/// <param name="Path">Module path.</param>
/// <param name="OriginalType">The float module's type name.</param>
/// <param name="Weights">Weight qtype, or null.</param>
/// <param name="Activations">Activation qtype, or null.</param>
/// <param name="Layout">How its weight is (frozen) or will be (dynamic mode) stored: the group size actually used,
/// bits per weight with scales, bytes; null when its weights stay float.</param>
public sealed record QuantizedModuleInfo(string Path, string OriginalType, QType? Weights, QType? Activations,
    WeightLayout? Layout = null)
{
    /// <summary>
    /// The record of a quantized module as it is now: a frozen module's stored weight, or what freezing a
    /// dynamic one will store. Eager <see cref="Quantizer.Quantize"/> and generated [Quantize] code both describe
    /// their modules with it.
    /// </summary>
    /// <param name="module">The quantized module.</param>
    /// <param name="originalType">The float layer's type name (default: its registered kind's).</param>
    public static QuantizedModuleInfo For(QModule module, string? originalType = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        WeightLayout? layout = module switch
        {
            { QuantizedWeight: QuantizedWeight frozen } => WeightLayout.Of(frozen, module.GroupSize),
            { WeightQType: QType qtype, FloatWeight: { } weight } => WeightLayout.For(qtype, weight.shape, weight.dtype,
                module.GroupSize),
            _ => null,
        };
        string type = originalType ?? LayerKinds.Of(module)?.Name ?? module.GetType().Name;
        return new QuantizedModuleInfo(module.Path, type, module.WeightQType, module.ActivationQType, layout);
    }
}

/// <summary>One module left float, and why.</summary>
/// <param name="Path">Module path.</param>
/// <param name="Type">Its type name.</param>
/// <param name="Reason">Why it was not quantized, and what to do about it.</param>
public sealed record SkippedModuleInfo(string Path, string Type, string Reason);

/// <summary>What <see cref="Quantizer.Quantize"/> did, layer by layer: each quantized layer's qtypes and weight
/// layout (the group size actually used, bits per weight with scales, bytes), and each layer left float with the
/// reason.</summary>
/// <param name="Quantized">Modules replaced by quantized ones.</param>
/// <param name="Skipped">Modules with parameters that were left float, with reasons.</param>
public sealed record QuantizationReport(IReadOnlyList<QuantizedModuleInfo> Quantized,
    IReadOnlyList<SkippedModuleInfo> Skipped)
{
    /// <summary>The report of quantized modules as they are now (frozen: their stored weights), e.g. a generated
    /// model's <c>QuantizedModules()</c> or <see cref="Quantizer.QuantizedModules"/>.</summary>
    /// <param name="modules">The quantized modules.</param>
    public static QuantizationReport For(IEnumerable<QModule> modules)
    {
        ArgumentNullException.ThrowIfNull(modules);
        return new QuantizationReport(modules.Select(m => QuantizedModuleInfo.For(m)).ToArray(), []);
    }

    /// <summary>Bytes of the quantized layers' weights as stored (codes, scales, shifts).</summary>
    public long QuantizedBytes => Quantized.Sum(q => q.Layout?.Bytes ?? 0);

    /// <summary>Bytes the same weights take as float.</summary>
    public long FloatBytes => Quantized.Sum(q => q.Layout?.FloatBytes ?? 0);

    /// <inheritdoc />
    public override string ToString()
    {
        CultureInfo c = CultureInfo.InvariantCulture;
        var lines = new List<string> { $"{Quantized.Count} module(s) quantized, {Skipped.Count} left float" };
        lines.AddRange(Quantized.Select(q =>
            $"  {q.Path}: {q.OriginalType} -> weights {q.Layout?.ToString() ?? q.Weights?.QuantoName() ?? "none"}, " +
            $"activations {q.Activations?.QuantoName() ?? "none"}"));
        lines.AddRange(Skipped.Select(s => $"  {s.Path}: {s.Type} left float: {s.Reason}"));
        if (FloatBytes > 0)
        {
            double ratio = (double)FloatBytes / QuantizedBytes;
            lines.Add(string.Create(c,
                $"Quantized weights: {FloatBytes:N0} -> {QuantizedBytes:N0} bytes ({ratio:F2}x smaller)"));
        }
        return string.Join(Environment.NewLine, lines);
    }
}
