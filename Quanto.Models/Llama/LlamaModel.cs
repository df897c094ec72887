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
        long start = cache?.Length ?? 0, count = input_ids.shape[1];
        Tensor hidden = embed_tokens.forward(input_ids);
        (Tensor cos, Tensor sin) = _rotary.CosSin(start, count, hidden.dtype, hidden.device);
        Tensor? mask = DecoderContext.CausalMask(start, count, _config.SlidingWindow, ScalarType.Float32,
            hidden.device);
        var context = new DecoderContext(cos, sin, mask, cache);
        foreach (LlamaDecoderLayer layer in layers) hidden = layer.forward(hidden, context);
        return norm.forward(hidden);
    }
}
