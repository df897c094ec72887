using Quanto.Nn;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Models.Llama;

/// <summary>transformers' LlamaModel: embed_tokens, the decoder layers, the final RMSNorm.</summary>
[Quantize]
public sealed partial class LlamaModel : Module<Tensor, KvCache?, Tensor>
{
    private readonly Module<Tensor, Tensor> embed_tokens;
    private readonly ModuleList<LlamaDecoderLayer> layers;
    [NoQuantize] private readonly RmsNorm norm;
    private readonly LlamaConfig _config;
    private readonly RotaryEmbedding _rotary;

    /// <summary>Builds the decoder for <paramref name="config"/>.</summary>
    public LlamaModel(LlamaConfig config, Device? device = null, ScalarType? dtype = null) : base(nameof(LlamaModel))
    {
        ArgumentNullException.ThrowIfNull(config);
        _config = config;
        _rotary = new RotaryEmbedding(config);
        embed_tokens = Embedding(config.VocabSize, config.HiddenSize, device: device, dtype: dtype);
        layers = new ModuleList<LlamaDecoderLayer>();
        for (int i = 0; i < config.NumHiddenLayers; i++) layers.Add(new LlamaDecoderLayer(config, i, device, dtype));
        norm = new RmsNorm(config.HiddenSize, config.RmsNormEps, device, dtype);
        RegisterComponents();
    }

    /// <summary>The token embedding table (the tied lm_head shares its weight).</summary>
    internal Module<Tensor, Tensor> EmbedTokens => embed_tokens;

    /// <summary>(batch, new) token ids, positions continuing the cache -> final hidden states (batch, new, hidden).
    /// </summary>
    public override Tensor forward(Tensor input_ids, KvCache? cache)
    {
        using var threads = new TorchThreads(ThreadsForLayers(input_ids));
        long start = cache?.Length ?? 0, count = input_ids.size(1);
        Tensor hidden = embed_tokens.forward(input_ids);
        (Tensor cos, Tensor sin) = _rotary.Cached(start, count, hidden.dtype, hidden.device);
        // Every query head of a key/value group shares the mask: one row block per head of the group.
        Tensor? mask = DecoderContext.CausalMask(start, count, _config.SlidingWindow, hidden.dtype, hidden.device)
            ?.repeat(_config.NumAttentionHeads / _config.NumKeyValueHeads, 1);
        var context = new DecoderContext(cos, sin, mask, cache);
        foreach (LlamaDecoderLayer layer in layers) hidden = layer.forward(hidden, context);
        return norm.forward(hidden);
    }

    /// <summary>libtorch's intra-op thread count while the decoder layers run on <paramref name="ids"/>: one for a
    /// decode step or a prompt under <see cref="TorchThreads.SmallInputTokens"/> tokens of a model whose Linears
    /// are quantized (they run on Quanto's own kernel pool, <see cref="Kernels.Cpu.CpuKernels.Threads"/>, and what
    /// is left for libtorch are tiny ops: RMSNorm, rotary, a few tokens' attention, SiLU, adds, each of which would
    /// wake its OpenMP pool and wait for the slowest thread, see <see cref="TorchThreads"/>); null (libtorch's
    /// setting) for longer prompts, whose ops are big enough to share, and for float Linears, which are MKL's and
    /// use the threads. lm_head runs after, with libtorch's setting.</summary>
    internal int? ThreadsForLayers(Tensor ids) =>
        TorchThreads.IsSmall(ids) && (IsQuantized || named_modules().Any(m => m.module is QModule)) ? 1 : null;
}
