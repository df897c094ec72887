using System.Text.Json;
using System.Text.Json.Nodes;
using Quanto.Generated;
using Quanto.Models.HuggingFace;
using Quanto.Serialization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Models.Pretrained;

/// <summary>
/// optimum-quanto's QuantizedModelForCausalLM save_pretrained / from_pretrained for the model classes. A saved
/// folder holds what optimum-quanto writes: <c>model.safetensors</c> (or shards + <c>model.safetensors.index.json</c>)
/// in its keys, <c>quanto_qmap.json</c>, and <c>config.json</c>; a tied lm_head that stays float is not written
/// (transformers' save_pretrained drops tied duplicates), and a tied one that was quantized unties the saved config.
/// </summary>
internal static class PretrainedFiles
{
    /// <summary>The weights file name.</summary>
    internal const string WeightsFile = HfCheckpoint.WeightsFileName;

    /// <summary>Writes the folder. <paramref name="skipKeys"/> are float state-dict keys not written.</summary>
    internal static void Save(nn.Module model, JsonObject config, string folder, long? maxShardBytes,
        IReadOnlySet<string> skipKeys)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        Directory.CreateDirectory(folder);
        // The runtime's save: the same keys, map, group-size and activation-scale records as QuantizedModel.Save.
        QuantizedModel.SaveCore(model, Path.Combine(folder, WeightsFile), null, maxShardBytes, skipKeys);
        string text = config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
        string target = Path.Combine(folder, ConfigJson.FileName), temporary = target + ".tmp";
        File.WriteAllText(temporary, text);
        File.Move(temporary, target, overwrite: true);
    }

    /// <summary>
    /// Builds the model on the meta device, gives every float tensor real (uninitialised) memory except the
    /// weights of the layers the quantization map names (they get a one-element stand-in of the right shape, so
    /// their float weight never exists), then loads the file through the model's generated lifecycle (optimum-quanto's
    /// requantize): the twins the map names are built and every tensor is read and checked before the model is
    /// changed; layers the map does not list load as float layers.
    /// </summary>
    /// <exception cref="QuantoFormatException">No quanto_qmap.json, a map naming a module the model lacks, or
    /// tensors that do not fit (missing, extra, wrong shape: each named with its file).</exception>
    internal static TModel Load<TModel>(string folder, LoadOptions? options, Func<Device, ScalarType, TModel> build,
        Action<TModel, QuantizedCheckpoint> tie) where TModel : nn.Module, IQuantizedModel
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        options ??= new LoadOptions();
        ScalarType dtype = options.DType ?? ScalarType.Float32;
        DTypes.Check(dtype);
        Device device = options.Device ?? CPU;
        if (!File.Exists(Path.Combine(folder, QuantizationMap.FileName)))
        {
            throw new QuantoFormatException(folder,
                $"no {QuantizationMap.FileName}: not a quantized model saved with SavePretrained (or " +
                "optimum-quanto's " +
                "save_pretrained); load a float checkpoint with FromHuggingFace.");
        }
        using QuantizedCheckpoint checkpoint = QuantizedCheckpoint.Load(folder);
        TModel model = build(HfLoader.Meta, dtype);
        try
        {
            Dictionary<string, nn.Module> modules = ParameterSlots.Modules(model);
            using (no_grad())
            {
                foreach ((string key, Parameter parameter) in model.named_parameters().ToList())
                {
                    // A LayerNorm listed for its activations keeps (and loads) its float weight.
                    bool quantizedWeight = key.EndsWith(".weight", StringComparison.Ordinal) &&
                                           checkpoint.QuantizationMap.TryGet(key[..^".weight".Length],
                                               out QuantizationSpec spec) && spec.Weights is not null;
                    Tensor value = quantizedWeight
                        ? zeros(1, dtype: dtype, device: device).expand(parameter.shape)
                        : empty(parameter.shape, dtype: dtype, device: device);
                    ParameterSlots.Assign(modules, key, value);
                }
            }
            tie(model, checkpoint);
            model.Quantization.LoadCheckpoint(checkpoint);
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
