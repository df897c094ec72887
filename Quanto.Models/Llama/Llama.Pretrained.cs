using Quanto.Models.HuggingFace;
using Quanto.Models.Pretrained;
using Quanto.Quantization;
using Quanto.Serialization;

namespace Quanto.Models.Llama;

public sealed partial class Llama
{
    /// <summary>The module optimum-quanto's README leaves float by default.</summary>
    public const string LmHead = "lm_head";

    /// <summary>
    /// optimum-quanto's <c>QuantizedModelForCausalLM.quantize</c>, through the code the [Quantize] generator wrote
    /// for this class: builds the quantized twin of every Linear whose path matches <paramref name="include"/> (all
    /// when null) and none of <paramref name="exclude"/> (default: lm_head), then freezes them (integer weights
    /// replace the float ones, which are released). From then on <see cref="forward"/> (and Generate) runs
    /// ForwardQuantized. With activations, calibrate afterwards inside a <see cref="Calibration"/> (or
    /// <c>Calibrate()</c>). The eager <see cref="Quantizer.Quantize"/> also works on this class, as on any model.
    /// </summary>
    /// <returns>What was quantized and what stayed float (embeddings, norms, excluded layers) and why.</returns>
    public QuantizationReport Quantize(QType? weights = QType.QInt8, QType? activations = null,
        IEnumerable<string>? include = null, IEnumerable<string>? exclude = null, Optimizer? optimizer = null,
        int? groupSize = null)
    {
        return ModelQuantizer.Quantize(this, weights, activations, optimizer, include, exclude ?? [LmHead],
            groupSize);
    }

    /// <summary>
    /// optimum-quanto's <c>save_pretrained</c>: <c>model.safetensors</c> (shards + index above
    /// <paramref name="maxShardBytes"/>), <c>quanto_qmap.json</c> and <c>config.json</c> in <paramref name="folder"/>.
    /// </summary>
    public void SavePretrained(string folder, long? maxShardBytes = null)
    {
        bool headQuantized = Quantizer.QuantizedModules(this).Any(m => m.Path == LmHead);
        var config = Config.ToJson();
        config["torch_dtype"] = DTypes.Name(model.EmbedTokens.parameters().First().dtype);
        if (Config.TieWordEmbeddings && headQuantized) config["tie_word_embeddings"] = false; // as optimum-quanto
        var skip = new HashSet<string>(StringComparer.Ordinal);
        if (Config.TieWordEmbeddings && !headQuantized) skip.Add(LmHead + ".weight");
        PretrainedFiles.Save(this, config, folder, maxShardBytes, skip);
    }

    /// <summary>
    /// optimum-quanto's <c>from_pretrained</c>: reloads a folder written by <see cref="SavePretrained"/> (or by
    /// optimum-quanto for a Llama-family model), frozen, with each quantized layer's integer weights read
    /// directly (its float weight is never built).
    /// </summary>
    /// <exception cref="QuantoFormatException">No quanto_qmap.json or config.json, or tensors that do not fit.
    /// </exception>
    public static Llama FromPretrained(string folder, LoadOptions? options = null)
    {
        LlamaConfig config = LlamaConfig.FromJson(ConfigJson.Load(folder));
        return PretrainedFiles.Load(folder, options, (device, dtype) => new Llama(config, device, dtype),
            (llama, checkpoint) =>
            {
                if (!config.TieWordEmbeddings || checkpoint.QuantizationMap.TryGet(LmHead, out _)) return;
                llama.TieWeights();
                const string head = LmHead + ".weight", embedding = "model.embed_tokens.weight";
                StateDict tensors = checkpoint.StateDict;
                if (!tensors.ContainsKey(head) && tensors.ContainsKey(embedding))
                    tensors.Add(head, tensors[embedding].alias()); // the tied head is not in the file
            });
    }
}
