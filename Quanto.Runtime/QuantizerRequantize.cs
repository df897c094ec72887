using Quanto.Nn;
using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto;

public static partial class Quantizer
{
    /// <summary>
    /// optimum-quanto's <c>requantize</c>: turns a freshly constructed float model into the quantized model the map
    /// describes (each module path quantized with the map's qtypes; the group size re-derived from the shapes, or the
    /// one stored in the checkpoint's metadata), then loads the tensors with
    /// <see cref="QuantizedModel.Load(nn.Module, StateDict, QuantizationMap, IEnumerable{QModule})"/>. Modules whose
    /// file holds quantized weights end up frozen; modules saved before freezing get their float weights back.
    /// </summary>
    /// <param name="model">A float model of the checkpoint's architecture (its values are overwritten).</param>
    /// <param name="stateDict">The tensors, in optimum-quanto's keys; it keeps ownership of them.</param>
    /// <param name="map">The quantization map.</param>
    /// <exception cref="QuantoFormatException">The map names a module the model lacks, or one that cannot be
    /// quantized as asked; or the tensors do not fit the model (see QuantizedModel.Load). Modules are swapped before
    /// the tensors are checked, so after a load error the model is quantized but not loaded.</exception>
    public static void Requantize(nn.Module model, StateDict stateDict, QuantizationMap map) =>
        Requantize(model, stateDict, map, null);

    private static void Requantize(nn.Module model, StateDict stateDict, QuantizationMap map,
        IReadOnlyDictionary<string, int>? exactGroups)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(stateDict);
        ArgumentNullException.ThrowIfNull(map);
        string source = stateDict.Source;
        IReadOnlyDictionary<string, int> groups = QuantizedModel.StoredGroupSizes(stateDict);
        var modules = new Dictionary<string, nn.Module>(StringComparer.Ordinal) { [""] = model };
        foreach ((string name, nn.Module module) in model.named_modules()) modules.TryAdd(name, module);

        // Check the whole map before swapping anything.
        foreach ((string path, QuantizationSpec spec) in map)
        {
            if (!modules.TryGetValue(path, out nn.Module? module))
            {
                throw new QuantoFormatException(source,
                    $"the quantization map names module '{path}', which the model does not have.");
            }
            if (path.Length == 0 && module is not QModule)
            {
                throw new QuantoFormatException(source,
                    "the quantization map quantizes the root module, which cannot be swapped in place; quantize it " +
                    "yourself and use QuantizedModel.Load.");
            }
            if (spec.Weights is null && spec.Activations is null)
            {
                throw new QuantoFormatException(source,
                    $"module '{path}': the map quantizes neither weights nor activations.");
            }
            if (spec.Activations is QType a && a.Info().IsPacked)
            {
                throw new QuantoFormatException(source,
                    $"module '{path}': activations cannot be {a.QuantoName()} (qint8 or a float8 type).");
            }
        }

        foreach ((string path, QuantizationSpec spec) in map)
        {
            if (modules[path] is QModule) continue; // already quantized: Load checks it matches the map
            int? groupSize = groups.TryGetValue(path, out int g) ? g : null;
            QuantizationReport report = Quantize(model, spec.Weights, spec.Activations,
                include: [QuantizedModel.EscapePattern(path)], groupSize: groupSize, embeddings: true);
            if (report.Quantized.Count != 1 || report.Quantized[0].Path != path)
            {
                string why = report.Skipped.FirstOrDefault(s => s.Path == path)?.Reason
                    ?? $"{modules[path].GetType().Name} has no quantized counterpart for {QuantizedModel.Format(spec)}";
                throw new QuantoFormatException(source, $"module '{path}' cannot be quantized: {why}.");
            }
        }
        QuantizedModel.LoadCore(model, stateDict, map, null, exactGroups);
    }

    /// <summary>
    /// Reads a checkpoint (a <c>.qnt</c> package, or safetensors with <c>quanto_qmap.json</c> beside it: a file, an
    /// index or a folder) and requantizes <paramref name="model"/> from it; see
    /// <see cref="Requantize(nn.Module, StateDict, QuantizationMap)"/>.
    /// </summary>
    /// <exception cref="QuantoFormatException">The file is malformed or does not fit the model.</exception>
    public static void Requantize(nn.Module model, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(path);
        using QuantizedCheckpoint checkpoint = QuantizedCheckpoint.Load(path);
        Requantize(model, checkpoint.StateDict, checkpoint.QuantizationMap, checkpoint.GroupSizes);
    }
}
