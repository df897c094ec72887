using Quanto.Models.HuggingFace;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Models.Bert;

/// <summary>
/// A BERT encoder, module for module transformers' BertModel (embeddings, encoder.layer.N with
/// attention.self.query/key/value, attention.output.dense, intermediate.dense, output.dense, post-LN), with the
/// sentence-embedding head of sentence-transformers (mean pooling over the attention mask, then L2 normalisation).
/// Module paths are transformers' state-dict names, so quantization patterns, files and maps use them too.
/// Inference only: no dropout, no pooler (a checkpoint's pooler weights are reported as ignored). A [Quantize]
/// class: <see cref="Quantize"/> runs the code the generator wrote for it, and <see cref="forward"/> then runs
/// ForwardQuantized.
/// </summary>
[Quantize]
public sealed partial class Bert : Module<Tensor, Tensor, Tensor, Tensor>
{
    private readonly BertEmbeddings embeddings;
    private readonly BertEncoder encoder;
    private int? _intraOpThreads;

    /// <summary>Builds a model with freshly initialised weights (load real ones with
    /// <see cref="FromHuggingFace(string, LoadOptions?)"/>).</summary>
    /// <param name="config">The architecture.</param>
    /// <param name="device">Where the weights live (the meta device builds shapes without memory).</param>
    /// <param name="dtype">float32 (default), float16 or bfloat16.</param>
    public Bert(BertConfig config, Device? device = null, ScalarType? dtype = null) : base(nameof(Bert))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        if (dtype is ScalarType d) DTypes.Check(d);
        Config = config;
        embeddings = new BertEmbeddings(config, device, dtype);
        encoder = new BertEncoder(config, device, dtype);
        RegisterComponents();
    }

    /// <summary>The architecture.</summary>
    public BertConfig Config { get; }

    /// <summary>
    /// libtorch's intra-op thread count while <see cref="forward"/> and <see cref="SentenceEmbeddings"/> run, on the
    /// calling thread (set for the call, then put back). Null (the default) chooses per call: one thread for inputs
    /// of fewer than <see cref="SmallInputTokens"/> tokens (batch x sequence), libtorch's own setting otherwise.
    /// Why: on a small input BERT's ops besides the Linears (LayerNorm, GELU, softmax, the per-head attention
    /// matmuls, adds) are tiny, and each one run by libtorch's OpenMP pool pays a thread wake-up and waits for its
    /// slowest thread (where another process holds a core, a scheduler slice per op: all-MiniLM-L6-v2 at batch 1 x 24
    /// tokens took 12 ms per forward on one thread and 50-900 ms on two). On larger inputs those ops are big enough
    /// to share. Measured quiet, one run, all-MiniLM-L6-v2 on 2 vCPUs (2026-12-02 06:00 UTC), one thread against
    /// two: batch 1 w8 dyn-a8 242.9 against 149.2 sentences/s, w8 159.0 against 102.0; batch 32 (about 24 tokens
    /// each) w8 dyn-a8 232.0 against 293.6, w8 136.2 against 145.8. Quantized Linears run on Quanto's own kernel
    /// pool (<see cref="Kernels.Cpu.CpuKernels.Threads"/>) either way.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A count below 1.</exception>
    public int? IntraOpThreads
    {
        get => _intraOpThreads;
        set
        {
            if (value is int threads) ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
            _intraOpThreads = value;
        }
    }

    /// <summary>Below this many tokens (batch x sequence) the forward runs on one libtorch thread when
    /// <see cref="IntraOpThreads"/> is null.</summary>
    public const long SmallInputTokens = TorchThreads.SmallInputTokens;

    /// <summary>
    /// The last hidden state (batch, seq, hidden) for token ids (batch, seq), an attention mask (1 = token,
    /// 0 = padding) and token type ids, all int64 of the same shape.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes, dtypes or ids that do not fit the model.</exception>
    public override Tensor forward(Tensor input_ids, Tensor attention_mask, Tensor token_type_ids)
    {
        using var threads = new TorchThreads(ThreadsFor(input_ids));
        if (IsQuantized) return ForwardQuantized(input_ids, attention_mask, token_type_ids);
        CheckInputs(input_ids, attention_mask, token_type_ids);
        Tensor hidden = embeddings.forward(input_ids, token_type_ids);
        return encoder.forward(hidden, AdditiveMask(attention_mask, hidden.dtype));
    }

    /// <summary>
    /// Sentence embeddings (batch, hidden): the last hidden state averaged over the tokens the mask keeps, then
    /// L2-normalised, as sentence-transformers' all-MiniLM-L6-v2 pipeline does. Token types are all 0.
    /// </summary>
    /// <exception cref="ArgumentException">Inputs that do not fit the model.</exception>
    public Tensor SentenceEmbeddings(Tensor inputIds, Tensor attentionMask)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var threads = new TorchThreads(ThreadsFor(inputIds));
        Tensor hidden = forward(inputIds, attentionMask, zeros_like(inputIds));
        return MeanPoolNormalized(hidden, attentionMask).MoveToOuterDisposeScope();
    }

    /// <summary>Mean pooling over the mask, then L2 normalisation (sentence-transformers' Pooling + Normalize).
    /// </summary>
    public static Tensor MeanPoolNormalized(Tensor lastHiddenState, Tensor attentionMask)
    {
        ArgumentNullException.ThrowIfNull(lastHiddenState);
        ArgumentNullException.ThrowIfNull(attentionMask);
        using var scope = NewDisposeScope();
        Tensor mask = attentionMask.unsqueeze(-1).to(lastHiddenState.dtype);
        Tensor summed = lastHiddenState.mul(mask).sum(1);
        Tensor counts = mask.sum(1).clamp_min(1e-9);
        return functional.normalize(summed.div_(counts), p: 2, dim: 1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Loads a transformers BertModel checkpoint folder: config.json (model_type "bert") and model.safetensors or
    /// model.safetensors.index.json + shards, in float32, float16 or bfloat16 (converted to
    /// <see cref="LoadOptions.DType"/>). Keys may carry the "bert." prefix of the task models (BertForMaskedLM ...);
    /// pooler and task-head weights are ignored and listed in the report.
    /// </summary>
    /// <exception cref="Quanto.Serialization.QuantoFormatException">A missing or malformed file or config field,
    /// another model_type, missing keys, shape mismatches or unexpected keys (each named).</exception>
    public static Bert FromHuggingFace(string folder, LoadOptions? options = null) =>
        FromHuggingFace(folder, options, out _);

    /// <summary><see cref="FromHuggingFace(string, LoadOptions?)"/>, with what was loaded and ignored.</summary>
    public static Bert FromHuggingFace(string folder, LoadOptions? options, out LoadReport report)
    {
        BertConfig config = BertConfig.FromJson(ConfigJson.Load(folder));
        return HfLoader.Load(folder, options, (device, dtype) => new Bert(config, device, dtype), Naming, out report);
    }

    /// <summary>transformers' key layout: bare BertModel keys, or the same under "bert."; heads are ignored.
    /// </summary>
    internal static CheckpointNaming Naming { get; } = new(
        key => [key, "bert." + key],
        key => key.StartsWith("pooler.", StringComparison.Ordinal) ||
               key.StartsWith("bert.pooler.", StringComparison.Ordinal) ||
               key.StartsWith("cls.", StringComparison.Ordinal) ||
               key.EndsWith("embeddings.position_ids", StringComparison.Ordinal),
        new HashSet<string>(StringComparer.Ordinal));

    private void CheckInputs(Tensor ids, Tensor mask, Tensor types)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(mask);
        ArgumentNullException.ThrowIfNull(types);
        if (ids.dim() != 2 || ids.dtype != ScalarType.Int64)
        {
            throw new ArgumentException(
                $"input_ids must be int64 (batch, seq); got {ids.dtype} {Shape(ids)}.", nameof(ids));
        }
        if (!mask.shape.SequenceEqual(ids.shape) || !types.shape.SequenceEqual(ids.shape))
        {
            throw new ArgumentException(
                $"attention_mask {Shape(mask)} and token_type_ids {Shape(types)} must match input_ids {Shape(ids)}.");
        }
        if (ids.shape[1] > Config.MaxPositionEmbeddings)
        {
            throw new ArgumentException(
                $"sequence length {ids.shape[1]} exceeds max_position_embeddings {Config.MaxPositionEmbeddings}; " +
                "truncate the input.", nameof(ids));
        }
        InputChecks.Range(ids, Config.VocabSize, "input_ids", "vocab_size");
        InputChecks.Range(types, Config.TypeVocabSize, "token_type_ids", "type_vocab_size");
    }

    /// <summary>The libtorch thread count for a call on <paramref name="ids"/> (see <see cref="IntraOpThreads"/>);
    /// null leaves libtorch's setting.</summary>
    internal int? ThreadsFor(Tensor? ids) =>
        _intraOpThreads ?? (ids is null || TorchThreads.IsSmall(ids) ? 1 : null);

    private static string Shape(Tensor t) => Shapes.Format(t.shape);

    // transformers' extended mask: 0 where attended, the dtype's minimum where masked; (batch, 1, 1, seq).
    private static Tensor AdditiveMask(Tensor attentionMask, ScalarType dtype) =>
        attentionMask.to(dtype).neg_().add_(1).mul_(finfo(dtype).min).unsqueeze(1).unsqueeze(1);
}

/// <summary>transformers' BertEncoder: the stack of layers, as <c>encoder.layer.N</c>.</summary>
[Quantize]
public sealed partial class BertEncoder : Module<Tensor, Tensor, Tensor>
{
    private readonly ModuleList<BertLayer> layer;

    /// <summary>Builds num_hidden_layers layers.</summary>
    public BertEncoder(BertConfig config, Device? device = null, ScalarType? dtype = null) : base(nameof(BertEncoder))
    {
        ArgumentNullException.ThrowIfNull(config);
        layer = new ModuleList<BertLayer>();
        for (long i = 0; i < config.NumHiddenLayers; i++) layer.Add(new BertLayer(config, device, dtype));
        RegisterComponents();
    }

    /// <summary>Runs every layer in order.</summary>
    public override Tensor forward(Tensor hidden_states, Tensor attention_mask)
    {
        foreach (BertLayer block in layer) hidden_states = block.forward(hidden_states, attention_mask);
        return hidden_states;
    }
}
