using Quanto.Models.HuggingFace;
using Quanto.Models.Pretrained;
using Quanto.Quantization;
using Quanto.Serialization;

namespace Quanto.Models.Bert;

public sealed partial class Bert
{
    /// <summary>
    /// optimum-quanto's quantize for a whole model, through the code the [Quantize] generator wrote for this class:
    /// builds the quantized twin of every Linear (and, with activations, LayerNorm) whose path matches
    /// <paramref name="include"/> (all when null) and none of <paramref name="exclude"/>, then freezes them. From
    /// then on <see cref="forward"/> and <see cref="SentenceEmbeddings"/> run ForwardQuantized. With activations,
    /// calibrate afterwards inside a <see cref="Calibration"/> (or <c>Calibrate()</c>). The eager
    /// <see cref="Quantizer.Quantize"/> also works on this class, as on any model.
    /// </summary>
    /// <returns>What was quantized and what stayed float and why.</returns>
    public QuantizationReport Quantize(QType? weights = QType.QInt8, QType? activations = null,
        IEnumerable<string>? include = null, IEnumerable<string>? exclude = null, Optimizer? optimizer = null,
        int? groupSize = null)
    {
        return ModelQuantizer.Quantize(this, weights, activations, optimizer, include, exclude, groupSize);
    }

    /// <summary>optimum-quanto's save_pretrained: model.safetensors (or shards + index), quanto_qmap.json and
    /// config.json in <paramref name="folder"/>.</summary>
    public void SavePretrained(string folder, long? maxShardBytes = null)
    {
        var config = Config.ToJson();
        config["torch_dtype"] = DTypes.Name(embeddings.parameters().First().dtype);
        PretrainedFiles.Save(this, config, folder, maxShardBytes, new HashSet<string>(StringComparer.Ordinal));
    }

    /// <summary>Reloads a folder written by <see cref="SavePretrained"/>, frozen, without building the float
    /// weights of the quantized layers.</summary>
    /// <exception cref="QuantoFormatException">No quanto_qmap.json or config.json, or tensors that do not fit.
    /// </exception>
    public static Bert FromPretrained(string folder, LoadOptions? options = null)
    {
        BertConfig config = BertConfig.FromJson(ConfigJson.Load(folder));
        return PretrainedFiles.Load(folder, options, (device, dtype) => new Bert(config, device, dtype), (_, _) => { });
    }
}
