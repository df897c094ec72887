using Quanto.Generated;
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
    /// <paramref name="exclude"/> by its quantized twin, sharing the float parameters (dynamic mode until
    /// <see cref="Freeze"/>). Patterns use fnmatch syntax on module paths ("blocks.*.mlp.*", "lm_head").
    /// Embedding tables stay float unless <paramref name="embeddings"/> is true, as optimum-quanto leaves them.
    /// </summary>
    /// <param name="model">The model, changed in place.</param>
    /// <param name="weights">Weight qtype, or null to quantize activations only.</param>
    /// <param name="activations">Activation qtype (qint8 or a float8 type), or null.</param>
    /// <param name="optimizer">Weight optimizer (default: the qtype's).</param>
    /// <param name="include">Module path patterns to quantize (all when null or empty).</param>
    /// <param name="exclude">Module path patterns to leave float.</param>
    /// <param name="groupSize">Requested group size for 2/4-bit weights (default 128, with the 96/64/32/per-channel
    /// fallback; the report gives the one each layer got).</param>
    /// <param name="embeddings">Also quantize Embedding tables (weights only: qint8/float8 per row, qint2/qint4
    /// group-wise along the embedding dimension). optimum-quanto has no quantized Embedding: its requantize cannot
    /// read those entries of a saved file (every other entry stays loadable), so leave this false for files it
    /// must load.</param>
    /// <returns>What was quantized, and what was left float with the reason (unsupported layers are listed, not
    /// silently skipped).</returns>
    /// <exception cref="ArgumentException">Neither weights nor activations given, or 2/4-bit activations.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An undefined qtype, or a group size that is not a positive
    /// multiple of 8.</exception>
    public static QuantizationReport Quantize(nn.Module model, QType? weights = null, QType? activations = null,
        Optimizer? optimizer = null, IEnumerable<string>? include = null, IEnumerable<string>? exclude = null,
        int? groupSize = null, bool embeddings = false)
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
            if (kind.OptIn && !embeddings)
            {
                skipped.Add(new SkippedModuleInfo(path, module.GetType().Name,
                    $"{kind.Name} layers are quantized only when asked (embeddings: true), as optimum-quanto leaves " +
                    "them float; left float"));
                continue;
            }
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
            quantized.Add(QuantizedModuleInfo.For(replacement, module.GetType().Name));
        }
        return new QuantizationReport(quantized, skipped);
    }

    /// <summary>Freezes every quantized module: float weights are replaced by quantized ones and memory drops. A
    /// [Quantize] model is frozen by its generated Freeze (which also releases its layers' float weights).</summary>
    /// <returns>The number of modules frozen.</returns>
    public static int Freeze(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model is IQuantizedModel { Quantization.IsQuantized: true } generated)
        {
            int unfrozen = generated.Quantization.QuantizedModules().Count(m => !m.IsFrozen && m.WeightQType is not null);
            generated.Quantization.Freeze();
            return unfrozen;
        }
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
    /// Bytes the model holds: its parameters and buffers, the quantized weights of its frozen modules (which are not
    /// parameters), and the float copies their backends keep, made at each module's first frozen forward (a small
    /// convolution runs libtorch's direct convolution on one; the CPU kernels keep one for layers of at most
    /// <see cref="Kernels.Cpu.CpuKernels.FloatCopyLimit"/> weights where libtorch is faster). Measures what <see cref="Freeze"/> saves; the weights
    /// as a file stores them are the report's <see cref="QuantizationReport.QuantizedBytes"/>.
    /// </summary>
    public static long ModelBytes(nn.Module model) => ModelBytes(model, QuantizedModules(model), false);

    /// <summary><see cref="ModelBytes(nn.Module)"/>, optionally with the kernels' own forms of the weights.</summary>
    /// <param name="model">The model.</param>
    /// <param name="kernelLayouts">Also count the kernels' own forms of the weights (the CPU kernels' repacked
    /// layout, a device upload: <see cref="Tensors.QuantizedWeight.PreparedByteSize"/>), made at each module's first
    /// frozen forward and about the quantized weight's size again: what the process holds once the model ran.</param>
    public static long ModelBytes(nn.Module model, bool kernelLayouts) =>
        ModelBytes(model, QuantizedModules(model), kernelLayouts);

    /// <summary>
    /// <see cref="ModelBytes(nn.Module)"/> with the quantized modules given (<see cref="QuantizedModules"/> finds a
    /// [Quantize] model's generated twins, which sit beside its float layers, by itself). Each
    /// tensor is counted once, however many modules share it (a twin shares its layer's bias).
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="modules">Its quantized modules, wherever they sit.</param>
    public static long ModelBytes(nn.Module model, IEnumerable<QModule> modules) => ModelBytes(model, modules, false);

    /// <summary><see cref="ModelBytes(nn.Module, IEnumerable{QModule})"/>, optionally with the kernels' own forms of
    /// the weights.</summary>
    /// <param name="model">The model.</param>
    /// <param name="modules">Its quantized modules, wherever they sit.</param>
    /// <param name="kernelLayouts">Also count the kernels' own forms of the weights; see
    /// <see cref="ModelBytes(nn.Module, bool)"/>.</param>
    public static long ModelBytes(nn.Module model, IEnumerable<QModule> modules, bool kernelLayouts)
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
        return bytes + quantized.Sum(m => (m.QuantizedWeight?.ByteSize ?? 0) + m.PreparedByteSize(kernelLayouts));
    }

    /// <summary>The quantized modules of a model (the root included), with their paths; for a quantized [Quantize]
    /// model, its generated twins (which sit beside its layers, outside the module tree).</summary>
    public static IEnumerable<QModule> QuantizedModules(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model is IQuantizedModel { Quantization.IsQuantized: true } generated)
            return generated.Quantization.QuantizedModules();
        return TreeModules(model);
    }

    private static IEnumerable<QModule> TreeModules(nn.Module model)
    {
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
