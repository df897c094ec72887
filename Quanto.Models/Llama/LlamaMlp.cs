using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Models.Llama;

/// <summary>transformers' LlamaMLP (SwiGLU): down_proj(silu(gate_proj(x)) * up_proj(x)).</summary>
[Quantize]
public sealed partial class LlamaMlp : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> gate_proj;
    private readonly Module<Tensor, Tensor> up_proj;
    private readonly Module<Tensor, Tensor> down_proj;

    /// <summary>Builds the three projections.</summary>
    public LlamaMlp(LlamaConfig config, Device? device = null, ScalarType? dtype = null) : base(nameof(LlamaMlp))
    {
        ArgumentNullException.ThrowIfNull(config);
        gate_proj = Linear(config.HiddenSize, config.IntermediateSize, config.MlpBias, device, dtype);
        up_proj = Linear(config.HiddenSize, config.IntermediateSize, config.MlpBias, device, dtype);
        down_proj = Linear(config.IntermediateSize, config.HiddenSize, config.MlpBias, device, dtype);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x) =>
        down_proj.forward(functional.silu(gate_proj.forward(x)).mul(up_proj.forward(x)));
}
