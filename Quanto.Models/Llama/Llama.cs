using Quanto.Kernels.Cpu.Float;
using Quanto.Models.HuggingFace;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Models.Llama;

/// <summary>
/// A Llama-shaped causal LM, module for module transformers' LlamaForCausalLM (<c>model.embed_tokens</c>,
/// <c>model.layers.N.self_attn.{q,k,v,o}_proj</c>, <c>model.layers.N.mlp.{gate,up,down}_proj</c>, RMSNorms,
/// <c>model.norm</c>, <c>lm_head</c>), with a KV cache. model_types "llama", "mistral" and "qwen2" load (see
/// <see cref="LlamaConfig"/>); others are refused. Module paths are transformers' state-dict names. A [Quantize]
/// class: <see cref="Quantize"/> runs the code the generator wrote for it, and <see cref="forward"/> then runs
/// ForwardQuantized.
/// </summary>
[Quantize]
public sealed partial class Llama : Module<Tensor, KvCache?, Tensor>, ITiedWeights
{
    private readonly LlamaModel model;
    private readonly Module<Tensor, Tensor> lm_head;

    /// <summary>Builds a model with freshly initialised weights (load real ones with
    /// <see cref="FromHuggingFace(string, LoadOptions?)"/>).</summary>
    /// <param name="config">The architecture.</param>
    /// <param name="device">Where the weights live (the meta device builds shapes without memory).</param>
    /// <param name="dtype">float32 (default), float16 or bfloat16.</param>
    public Llama(LlamaConfig config, Device? device = null, ScalarType? dtype = null) : base(nameof(Llama))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        if (dtype is ScalarType d) DTypes.Check(d);
        Config = config;
        model = new LlamaModel(config, device, dtype);
        lm_head = Linear(config.HiddenSize, config.VocabSize, hasBias: false, device, dtype);
        RegisterComponents();
        if (device?.type != DeviceType.META) TieWeights();
    }

    /// <summary>The architecture.</summary>
    public LlamaConfig Config { get; }

    /// <summary>
    /// Logits (batch, new, vocab) for token ids (batch, new) int64. With a cache, the ids continue the cached
    /// sequence (their positions start at <see cref="KvCache.Length"/>) and their keys and values are appended; with
    /// null, the ids are a whole sequence from position 0.
    /// </summary>
    /// <exception cref="ArgumentException">ids that are not int64 (batch, new), ids outside the vocabulary, or a
    /// sequence longer than max_position_embeddings.</exception>
    public override Tensor forward(Tensor input_ids, KvCache? cache)
    {
        if (IsQuantized) return ForwardQuantized(input_ids, cache);
        CheckInputs(input_ids, cache);
        return Logits(model.forward(input_ids, cache));
    }

    /// <summary>
    /// lm_head on final hidden states. A float32 lm_head at 1-3 rows of a decode step runs Quanto's float32 GEMV
    /// (<see cref="FloatGemv"/>; libtorch's reads its 262 MB weight at a TinyLlama's shape well below the
    /// bandwidth), everything else lm_head's own forward (or, quantized, its twin).
    /// </summary>
    private Tensor Logits(Tensor hidden) =>
        FloatHead is (Tensor weight, var bias) && FloatGemv.Runs(hidden, weight, bias)
            ? FloatGemv.Linear(hidden, weight, bias)
            : lm_head.forward(hidden);

    /// <summary>
    /// lm_head's parameters while it runs as a float Linear, null once it is quantized: swapped for a quantized
    /// module in place (Quantizer.Quantize), or given a twin by this model's Quantize (after Freeze the Linear's
    /// weight is empty). Only the parameters are read here (the generator follows calls of the layer in forward and
    /// its helpers, and reports any other use of it).
    /// </summary>
    private (Tensor Weight, Tensor? Bias)? FloatHead =>
        lm_head is Linear head && head.weight is { } weight && _lm_headQuantized.Twin is null
            ? (weight, head.bias)
            : null;

    /// <summary>
    /// The logits of the last position only, (batch, 1, vocab): what generation samples from, without lm_head's
    /// work on the other positions of a prompt (at 128 tokens, 128 x 32000 x 2048 multiply-adds, whose results
    /// would be thrown away). Otherwise what <see cref="forward"/> computes, float or quantized.
    /// </summary>
    internal Tensor LastLogits(Tensor input_ids, KvCache? cache)
    {
        CheckInputs(input_ids, cache);
        if (!IsQuantized) return Logits(LastPosition(model.forward(input_ids, cache)));
        Lifecycle.BeginForward();
        return LogitsQuantized(LastPosition(model.ForwardQuantized(input_ids, cache)));
    }

    private static Tensor LastPosition(Tensor hidden)
    {
        long length = hidden.size(1);
        return length == 1 ? hidden : hidden.narrow(1, length - 1, 1);
    }

    /// <summary>A new, empty KV cache for this model.</summary>
    /// <param name="capacity">Positions to preallocate (it grows as needed).</param>
    public KvCache NewCache(long capacity = 256) => new(Config, Math.Min(capacity, Config.MaxPositionEmbeddings));

    /// <summary>
    /// Loads a transformers LlamaForCausalLM (or Mistral / Qwen2) checkpoint folder: config.json and
    /// model.safetensors or an index + shards, F32/F16/BF16, converted to <see cref="LoadOptions.DType"/>. A tied
    /// checkpoint (tie_word_embeddings) may omit lm_head.weight; rotary inv_freq buffers are ignored.
    /// </summary>
    /// <exception cref="Quanto.Serialization.QuantoFormatException">A missing or malformed file or config field,
    /// a model_type other than llama / mistral / qwen2, missing keys, shape mismatches, unexpected keys.</exception>
    public static Llama FromHuggingFace(string folder, LoadOptions? options = null) =>
        FromHuggingFace(folder, options, out _);

    /// <summary><see cref="FromHuggingFace(string, LoadOptions?)"/>, with what was loaded and ignored.</summary>
    public static Llama FromHuggingFace(string folder, LoadOptions? options, out LoadReport report)
    {
        LlamaConfig config = LlamaConfig.FromJson(ConfigJson.Load(folder));
        return HfLoader.Load(folder, options, (device, dtype) => new Llama(config, device, dtype), NamingFor(config),
            out report);
    }

    /// <inheritdoc />
    void ITiedWeights.TieWeights() => TieWeights();

    /// <summary>transformers' names; a tied lm_head is not read (its weight is embed_tokens').</summary>
    internal static CheckpointNaming NamingFor(LlamaConfig config) => new(
        key => [key],
        key => key.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal) ||
               (config.TieWordEmbeddings && key == "lm_head.weight"),
        config.TieWordEmbeddings
            ? new HashSet<string>(["lm_head.weight"], StringComparer.Ordinal)
            : new HashSet<string>(StringComparer.Ordinal));

    private void TieWeights()
    {
        if (!Config.TieWordEmbeddings) return;
        if (lm_head is Linear head && model.EmbedTokens is Embedding { weight: Parameter shared }) head.weight = shared;
    }

    private void CheckInputs(Tensor ids, KvCache? cache)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (ids.dim() != 2 || ids.dtype != ScalarType.Int64 || ids.size(1) == 0)
        {
            throw new ArgumentException(
                $"input_ids must be int64 (batch, new) with new >= 1; got {ids.dtype} {Shapes.Format(ids.shape)}.",
                nameof(ids));
        }
        long total = (cache?.Length ?? 0) + ids.size(1);
        if (total > Config.MaxPositionEmbeddings)
        {
            throw new ArgumentException(
                $"{total} positions exceed max_position_embeddings {Config.MaxPositionEmbeddings}.", nameof(ids));
        }
        InputChecks.Range(ids, Config.VocabSize, "input_ids", "vocab_size");
    }
}
