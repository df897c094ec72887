using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Models.Llama;

/// <summary>transformers' LlamaDecoderLayer (pre-norm): x + attn(norm(x)), then h + mlp(norm(h)).</summary>
[Quantize]
public sealed partial class LlamaDecoderLayer : Module<Tensor, DecoderContext, Tensor>
{
    private readonly LlamaAttention self_attn;
    private readonly LlamaMlp mlp;
    [NoQuantize] private readonly RmsNorm input_layernorm; // no quantized counterpart: float, as optimum-quanto
    [NoQuantize] private readonly RmsNorm post_attention_layernorm;

    /// <summary>Builds layer <paramref name="layer"/>.</summary>
    public LlamaDecoderLayer(LlamaConfig config, int layer, Device? device = null, ScalarType? dtype = null)
        : base(nameof(LlamaDecoderLayer))
    {
        ArgumentNullException.ThrowIfNull(config);
        self_attn = new LlamaAttention(config, layer, device, dtype);
        mlp = new LlamaMlp(config, device, dtype);
        input_layernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, device, dtype);
        post_attention_layernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, device, dtype);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor hidden_states, DecoderContext context)
    {
        Tensor attended = hidden_states.add(self_attn.forward(input_layernorm.forward(hidden_states), context));
        // add, not add_: the norm saved attended for the backward pass.
        return attended.add(mlp.forward(post_attention_layernorm.forward(attended)));
    }
}
