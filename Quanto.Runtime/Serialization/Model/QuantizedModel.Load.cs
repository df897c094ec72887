using Quanto.Nn;
using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Serialization;

// Loading: every module is read and checked before the model changes.
public static partial class QuantizedModel
{
    /// <summary>The load; <paramref name="exactGroups"/> are the group sizes a .qnt package stores per module.
    /// </summary>
    internal static void LoadCore(nn.Module model, StateDict stateDict, QuantizationMap map,
        IEnumerable<QModule>? modules, IReadOnlyDictionary<string, int>? exactGroups)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(stateDict);
        ArgumentNullException.ThrowIfNull(map);
        List<(string Path, QModule Module)> entries = PathsOf(model, modules);
        CheckAgainstMap(entries, map, stateDict.Source);
        IReadOnlyDictionary<string, int> groups = StoredGroupSizes(stateDict);
        var pending = new List<PendingModule>();
        try
        {
            foreach ((string p, QModule module) in entries)
            {
                int? requested = groups.TryGetValue(p, out int g) ? g : module.GroupSize;
                int? exact = exactGroups is not null && exactGroups.TryGetValue(p, out int e) ? e : null;
                pending.Add(ReadModule(stateDict, p, module, requested, exact));
            }
            var others = new List<(Tensor Target, Tensor Source)>();
            HashSet<string> owned = OwnedKeys(model, entries);
            foreach ((string key, Tensor target) in model.state_dict())
            {
                if (owned.Contains(key)) continue;
                others.Add((target, stateDict.Take(key, target.shape)));
            }
            stateDict.ThrowIfUnconsumed();

            // Everything read and checked: now change the model.
            using (no_grad())
            {
                foreach (PendingModule item in pending) item.Apply();
                foreach ((Tensor target, Tensor source) in others) target.copy_(source);
            }
        }
        finally
        {
            foreach (PendingModule item in pending) item.Dispose();
        }
    }

    private static void CheckAgainstMap(List<(string Path, QModule Module)> entries, QuantizationMap map,
        string source)
    {
        var paths = entries.Select(e => e.Path).ToHashSet(StringComparer.Ordinal);
        foreach ((string p, QuantizationSpec _) in map)
        {
            if (!paths.Contains(p))
            {
                throw new QuantoFormatException(source,
                    $"the quantization map names module '{p}', which is not a quantized module of this model " +
                    $"(quantized modules: {Names(paths)}). Load the file into a model quantized with the same " +
                    "layers (for a [Quantize] model, one whose attributes quantize that layer), or requantize a " +
                    "float model from it (Quantizer.Requantize).");
            }
        }
        foreach ((string p, QModule module) in entries)
        {
            if (!map.TryGet(p, out QuantizationSpec spec))
            {
                throw new QuantoFormatException(source,
                    $"{module.Describe()} is quantized in the model but not in the file's quantization map.");
            }
            var expected = new QuantizationSpec(module.WeightQType, module.ActivationQType);
            if (spec != expected)
            {
                throw new QuantoFormatException(source,
                    $"module '{p}': the file quantizes it to {Format(spec)}, the model to {Format(expected)}; " +
                    "quantize the model the same way, or requantize a float model from the file.");
            }
        }
    }

    // Loading: every module is read and checked before the model changes.
    /// <param name="source">The state dict.</param>
    /// <param name="p">The module's key prefix.</param>
    /// <param name="module">The module.</param>
    /// <param name="requestedGroup">The group size the file's 2/4-bit weight was quantized with (from the file's
    /// metadata, else the module's); null re-derives optimum-quanto's default from the shape.</param>
    /// <param name="exactGroup">The exact group size stored by a .qnt package, which takes precedence.</param>
    private static PendingModule ReadModule(StateDict source, string p, QModule module, int? requestedGroup,
        int? exactGroup)
    {
        var pending = new PendingModule(module);
        try
        {
            long[]? shape = module.QuantizedWeight?.Shape.ToArray() ?? module.FloatWeight?.shape;
            string floatKey = QuantoKeys.Join(p, QuantoKeys.Weight);
            if (shape is not null)
            {
                if (module.WeightQType is QType qtype && !source.ContainsKey(floatKey))
                {
                    pending.Weight = ReadQuantizedWeight(source, p, module, qtype, shape, requestedGroup,
                        exactGroup);
                }
                else
                {
                    Tensor floatWeight = source.Take(floatKey, shape);
                    if (module.IsFrozen)
                    {
                        // Saved before freezing, loaded into a frozen module: quantize it as Freeze would (with
                        // the group size the file records for it, if any).
                        QuantizedWeight current = module.QuantizedWeight!;
                        using Tensor converted = floatWeight.to(current.DType, current.Device);
                        pending.Weight = WeightQuantizer.Quantize(converted, module.WeightQType!.Value,
                            requestedGroup, module.Optimizer);
                    }
                    else
                    {
                        pending.Copies.Add((module.FloatWeight!, floatWeight));
                    }
                }
            }
            if (module.FloatBias is Tensor bias)
                pending.Copies.Add((bias, source.Take(QuantoKeys.Join(p, QuantoKeys.Bias), bias.shape)));
            pending.Copies.Add((module.input_scale, source.Take(QuantoKeys.Join(p, QuantoKeys.InputScale), [])));
            pending.Copies.Add((module.output_scale, source.Take(QuantoKeys.Join(p, QuantoKeys.OutputScale), [])));
            return pending;
        }
        catch
        {
            pending.Dispose();
            throw;
        }
    }

    private static QuantizedWeight ReadQuantizedWeight(StateDict source, string p, QModule module, QType qtype,
        long[] shape, int? requestedGroup, int? exactGroup)
    {
        QuantizedWeight weight;
        if (qtype.Info().IsPacked && exactGroup is int exact)
        {
            weight = QuantizedWeightState.ReadExact(source, p, qtype, shape, exact);
        }
        else if (qtype.Info().IsPacked && requestedGroup is int requested)
        {
            // Quantized with another requested group size: the layout follows from it.
            long rowLength = shape.Aggregate(1L, (a, b) => checked(a * b)) / shape[0];
            weight = QuantizedWeightState.ReadExact(source, p, qtype, shape, GroupSize.Resolve(rowLength, requested));
        }
        else
        {
            weight = QuantizedWeightState.Read(source, p, qtype, shape);
        }
        // Match the module's current dtype and device (the file may hold other scale dtypes).
        Tensor? like = module.QuantizedWeight is null ? module.FloatWeight : null;
        ScalarType dtype = module.QuantizedWeight?.DType ?? like?.dtype ?? weight.DType;
        Device device = module.QuantizedWeight?.Device ?? like?.device ?? weight.Device;
        if (dtype == weight.DType && device.type == weight.Device.type && device.index == weight.Device.index)
            return weight;
        if (!WeightChecks.IsSupportedFloat(dtype)) return weight;
        try
        {
            return weight.To(device, dtype);
        }
        finally
        {
            weight.Dispose();
        }
    }

    // Loading: every module is read and checked before the model changes.
    private sealed class PendingModule(QModule module) : IDisposable
    {
        public QuantizedWeight? Weight { get; set; }

        public List<(Tensor Target, Tensor Source)> Copies { get; } = [];

        public void Apply()
        {
            foreach ((Tensor target, Tensor source) in Copies) target.copy_(source);
            if (Weight is QuantizedWeight weight)
            {
                Weight = null; // the module owns it from here
                module.LoadQuantizedWeight(weight);
            }
        }

        public void Dispose() => Weight?.Dispose();
    }
}
