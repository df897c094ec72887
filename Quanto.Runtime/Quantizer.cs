using Quanto.Nn;
using Quanto.Quantization;
using static TorchSharp.torch;

namespace Quanto;

/// <summary>
/// The eager workflow for any TorchSharp model (optimum-quanto's quantize / freeze): swap supported layers for
/// quantized ones in place, calibrate, freeze. Models annotated with [Quantize] get the same through generated code.
/// </summary>
public static partial class Quantizer
{
    /// <summary>
    /// Replaces each layer of a registered kind (<see cref="LayerKinds"/>: Linear, Conv2d, and LayerNorm when
    /// activations are quantized, ...) whose path matches <paramref name="include"/> (all when null) and none of
    /// <paramref name="exclude"/> by its quantized twin, sharing the float parameters (dynamic mode until <see cref="Freeze"/>). Patterns use fnmatch syntax on module
    /// paths ("blocks.*.mlp.*", "lm_head").
    /// </summary>
    /// <returns>What was quantized, and what was left float with the reason (unsupported layers are listed, not
    /// silently skipped).</returns>
    /// <exception cref="ArgumentException">Neither weights nor activations given, or 2/4-bit activations.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An undefined qtype, or a group size that is not a positive
    /// multiple of 8.</exception>
    public static QuantizationReport Quantize(nn.Module model, QType? weights = null, QType? activations = null,
        Optimizer? optimizer = null, IEnumerable<string>? include = null, IEnumerable<string>? exclude = null,
        int? groupSize = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        QModule.CheckRequest(weights, activations, groupSize);
        string[] includes = include?.ToArray() ?? [];
        string[] excludes = exclude?.ToArray() ?? [];

        var modules = new Dictionary<string, nn.Module> { [""] = model };
        foreach ((string path, nn.Module module) in model.named_modules()) modules[path] = module;
        var quantized = new List<QuantizedModuleInfo>();
        var skipped = new List<SkippedModuleInfo>();
        foreach ((string path, nn.Module module) in modules.Where(p => p.Key.Length > 0).ToList())
        {
            if (module is QModule || InsideQuantized(path, modules)) continue;
            if (includes.Length > 0 && !includes.Any(p => Fnmatch.IsMatch(path, p))) continue;
            if (excludes.Any(p => Fnmatch.IsMatch(path, p))) continue;

            LayerKind? kind = LayerKinds.For(module);
            if (kind is null)
            {
                if (!module.named_children().Any() && module.parameters(recurse: false).Any())
                {
                    skipped.Add(new SkippedModuleInfo(path, module.GetType().Name,
                        $"no quantized counterpart ({LayerKinds.Names} are supported); left float"));
                }
                continue;
            }
            if (!kind.QuantizesWeights && activations is null) continue; // nothing of it would be quantized
            QModule replacement;
            try
            {
                replacement = kind.Create(module, new LayerSettings(weights, activations, groupSize, optimizer, path));
            }
            catch (NotSupportedException e)
            {
                skipped.Add(new SkippedModuleInfo(path, module.GetType().Name, e.Message));
                continue;
            }
            int dot = path.LastIndexOf('.');
            nn.Module parent = modules[dot < 0 ? "" : path[..dot]];
            string? refusal = ModuleSwapper.TryReplace(parent, path[(dot + 1)..], module, replacement);
            if (refusal is not null)
            {
                replacement.Abandon();
                skipped.Add(new SkippedModuleInfo(path, module.GetType().Name, refusal));
                continue;
            }
            modules[path] = replacement;
            quantized.Add(new QuantizedModuleInfo(path, module.GetType().Name, replacement.WeightQType,
                replacement.ActivationQType));
        }
        return new QuantizationReport(quantized, skipped);
    }

    /// <summary>Freezes every quantized module: float weights are replaced by quantized ones and memory drops.</summary>
    /// <returns>The number of modules frozen.</returns>
    public static int Freeze(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        int count = 0;
        foreach (QModule module in QuantizedModules(model))
        {
            if (module.IsFrozen || module.WeightQType is null) continue;
            module.Freeze();
            count++;
        }
        return count;
    }

    /// <summary>
    /// Bytes the model holds: its parameters and buffers plus the quantized weights of its frozen modules (which are
    /// not parameters). Measures what <see cref="Freeze"/> saves.
    /// </summary>
    public static long ModelBytes(nn.Module model) => ModelBytes(model, QuantizedModules(model));

    /// <summary>
    /// <see cref="ModelBytes(nn.Module)"/> for a model whose quantized modules are not all in its module tree (a
    /// [Quantize] model's generated twins sit beside its float layers: pass its <c>QuantizedModules()</c>). Each
    /// tensor is counted once, however many modules share it (a twin shares its layer's bias).
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="modules">Its quantized modules, wherever they sit.</param>
    public static long ModelBytes(nn.Module model, IEnumerable<QModule> modules)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(modules);
        List<QModule> quantized = modules.Distinct().ToList();
        var seen = new HashSet<IntPtr>();
        long bytes = 0;
        IEnumerable<Tensor> tensors = model.parameters().Concat(model.buffers())
            .Concat(quantized.SelectMany(m => m.parameters().Concat(m.buffers())));
        foreach (Tensor t in tensors)
        {
            if (seen.Add(t.Handle)) bytes += t.NumberOfElements * t.ElementSize;
        }
        return bytes + quantized.Sum(m => m.QuantizedWeight?.ByteSize ?? 0);
    }

    /// <summary>The quantized modules of a model (the root included), with their paths.</summary>
    public static IEnumerable<QModule> QuantizedModules(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model is QModule root) yield return root;
        foreach ((string _, nn.Module module) in model.named_modules())
        {
            if (module is QModule q) yield return q;
        }
    }

    private static bool InsideQuantized(string path, Dictionary<string, nn.Module> modules)
    {
        for (int dot = path.LastIndexOf('.'); dot > 0; dot = path.LastIndexOf('.', dot - 1))
        {
            if (modules.TryGetValue(path[..dot], out nn.Module? ancestor) && ancestor is QModule) return true;
        }
        return false;
    }
}

/// <summary>One module that was quantized.</summary>
/// <param name="Path">Module path.</param>
/// <param name="OriginalType">The float module's type name.</param>
/// <param name="Weights">Weight qtype, or null.</param>
/// <param name="Activations">Activation qtype, or null.</param>
public sealed record QuantizedModuleInfo(string Path, string OriginalType, QType? Weights, QType? Activations);

/// <summary>One module left float, and why.</summary>
/// <param name="Path">Module path.</param>
/// <param name="Type">Its type name.</param>
/// <param name="Reason">Why it was not quantized, and what to do about it.</param>
public sealed record SkippedModuleInfo(string Path, string Type, string Reason);

/// <summary>What <see cref="Quantizer.Quantize"/> did.</summary>
/// <param name="Quantized">Modules replaced by quantized ones.</param>
/// <param name="Skipped">Modules with parameters that were left float, with reasons.</param>
public sealed record QuantizationReport(IReadOnlyList<QuantizedModuleInfo> Quantized, IReadOnlyList<SkippedModuleInfo> Skipped)
{
    /// <inheritdoc />
    public override string ToString()
    {
        var lines = new List<string> { $"{Quantized.Count} module(s) quantized, {Skipped.Count} left float" };
        lines.AddRange(Quantized.Select(q =>
            $"  {q.Path}: {q.OriginalType} -> weights {q.Weights?.QuantoName() ?? "none"}, " +
            $"activations {q.Activations?.QuantoName() ?? "none"}"));
        lines.AddRange(Skipped.Select(s => $"  {s.Path}: {s.Type} left float: {s.Reason}"));
        return string.Join(Environment.NewLine, lines);
    }
}
