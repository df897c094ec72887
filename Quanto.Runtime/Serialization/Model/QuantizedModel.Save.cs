using System.Text.Json.Nodes;
using Quanto.Nn;
using static TorchSharp.torch;

namespace Quanto.Serialization;

// Saving: each quantized module becomes a QuantizedModuleState; the rest of the state dict follows.
public static partial class QuantizedModel
{
    private static void SaveCore(nn.Module model, string path, IEnumerable<QModule>? modules, long? maxShardBytes)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(path);
        List<(string Path, QModule Module)> entries = PathsOf(model, modules);
        var map = new QuantizationMap();
        var states = new List<KeyValuePair<string, QuantizedModuleState>>();
        var temporaries = new List<Tensor>();
        var groups = new JsonObject();
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
                }));
                if (module.GroupSize is int g && module.WeightQType is QType q && q.Info().IsPacked) groups[p] = g;
            }
            HashSet<string> owned = OwnedKeys(model, entries);
            var others = new List<KeyValuePair<string, Tensor>>();
            foreach ((string key, Tensor tensor) in model.state_dict())
            {
                if (!owned.Contains(key)) others.Add(KeyValuePair.Create(key, Detached(tensor, temporaries)!));
            }
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            if (groups.Count > 0) metadata[GroupSizesMetadataKey] = groups.ToJsonString();
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
