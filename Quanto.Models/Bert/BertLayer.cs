using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Models.Bert;

/// <summary>transformers' BertLayer (post-LN): attention block, then intermediate (dense + activation) and output
/// (dense, residual add, LayerNorm).</summary>
[Quantize]
public sealed partial class BertLayer : Module<Tensor, Tensor, Tensor>
{
    private readonly BertAttention attention;
    private readonly BertIntermediate intermediate;
    private readonly BertOutput output;

    /// <summary>Builds one layer for <paramref name="config"/>.</summary>
    public BertLayer(BertConfig config, Device? device = null, ScalarType? dtype = null) : base(nameof(BertLayer))
    {
        attention = new BertAttention(config, device, dtype);
        intermediate = new BertIntermediate(config, device, dtype);
        output = new BertOutput(config, device, dtype);
        RegisterComponents();
    }

    /// <summary>(batch, seq, hidden) and the additive mask -> (batch, seq, hidden).</summary>
    public override Tensor forward(Tensor hidden_states, Tensor attention_mask)
    {
        Tensor attended = attention.forward(hidden_states, attention_mask);
        return output.forward(intermediate.forward(attended), attended);
    }
}

/// <summary>transformers' BertIntermediate: dense to intermediate_size, then hidden_act.</summary>
[Quantize]
public sealed partial class BertIntermediate : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> dense;
    private readonly string _activation;

    /// <summary>Builds the projection for <paramref name="config"/>.</summary>
    public BertIntermediate(BertConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(BertIntermediate))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        _activation = config.HiddenAct;
        dense = Linear(config.HiddenSize, config.IntermediateSize, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <summary>act(dense(x)).</summary>
    public override Tensor forward(Tensor hidden_states) => Activate(dense.forward(hidden_states), _activation);

    /// <summary>transformers' ACT2FN for the activations BertConfig allows.</summary>
    internal static Tensor Activate(Tensor x, string activation) => activation switch
    {
        "gelu" => functional.gelu(x),
        "relu" => functional.relu(x),
        // gelu_new / gelu_pytorch_tanh: 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
        _ => x.mul(0.5).mul_(x.pow(3).mul_(0.044715).add_(x).mul_(Math.Sqrt(2 / Math.PI)).tanh_().add_(1)),
    };
}

/// <summary>transformers' BertOutput: dense back to hidden_size, residual add, LayerNorm.</summary>
[Quantize]
public sealed partial class BertOutput : Module<Tensor, Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> dense;
    private readonly Module<Tensor, Tensor> LayerNorm;

    /// <summary>Builds the projection for <paramref name="config"/>.</summary>
    public BertOutput(BertConfig config, Device? device = null, ScalarType? dtype = null) : base(nameof(BertOutput))
    {
        ArgumentNullException.ThrowIfNull(config);
        dense = Linear(config.IntermediateSize, config.HiddenSize, device: device, dtype: dtype);
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <summary>LayerNorm(dense(x) + residual).</summary>
    public override Tensor forward(Tensor hidden_states, Tensor input_tensor) =>
        LayerNorm.forward(dense.forward(hidden_states).add_(input_tensor));
}
