using Quanto.Nn;
using static TorchSharp.torch;

namespace Quanto.Serialization;

// Saving: each quantized module becomes a QuantizedModuleState; the rest of the state dict follows.
public static partial class QuantizedModel
{
    /// <summary>The save; <paramref name="skipKeys"/> are float state-dict keys left out (Quanto.Models' tied
    /// lm_head, which transformers' save_pretrained drops too).</summary>
    internal static void SaveCore(nn.Module model, string path, IEnumerable<QModule>? modules, long? maxShardBytes,
        IReadOnlySet<string>? skipKeys = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(path);
        List<(string Path, QModule Module)> entries = PathsOf(model, modules);
        var map = new QuantizationMap();
        var states = new List<KeyValuePair<string, QuantizedModuleState>>();
        var temporaries = new List<Tensor>();
        try
        {
            foreach ((string p, QModule module) in entries)
            {
                map.Add(p, new QuantizationSpec(module.WeightQType, module.ActivationQType));
                states.Add(KeyValuePair.Create(p, new QuantizedModuleState
                {
                    Weight = module.QuantizedWeight,
                    FloatWeight = module.IsFrozen ? null : Detached(module.FloatWeight, temporaries),
                    Bias = Detached(module.FloatBias, temporaries),
                    InputScale = module.input_scale,
                    OutputScale = module.output_scale,
                    RequestedGroupSize = module.GroupSize,
                }));
            }
            HashSet<string> owned = OwnedKeys(model, entries);
            var others = new List<KeyValuePair<string, Tensor>>();
            foreach ((string key, Tensor tensor) in model.state_dict())
            {
                if (owned.Contains(key) || skipKeys?.Contains(key) == true) continue;
                others.Add(KeyValuePair.Create(key, Detached(tensor, temporaries)!));
            }
            // Group-size requests are recorded by the checkpoint writer; activation-scale flags are ours to add.
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            ActivationScaleMetadata.Write(entries, metadata);
            // The states reference the modules' own tensors: the checkpoint writer takes views and never disposes
            // them, so the states are not disposed here either.
            QuantizedCheckpoint.Save(path, states, map, others, metadata, maxShardBytes);
        }
        finally
        {
            foreach (Tensor t in temporaries) t.Dispose();
        }
    }

    private static Tensor? Detached(Tensor? tensor, List<Tensor> temporaries)
    {
        if (tensor is null) return null;
        Tensor detached = tensor.detach();
        temporaries.Add(detached);
        return detached;
    }
}
