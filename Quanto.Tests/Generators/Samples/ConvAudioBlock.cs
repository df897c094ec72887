using TorchSharp;
using static Quanto.QType;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static TorchSharp.torch.nn.functional;

namespace Quanto.Tests.Generators.Samples;

/// <summary>A Conv1d audio block (a speech front end's shape): a reflect-padded Conv1d over (batch, channels, time),
/// GELU, a dilated zero-padded Conv1d back to the input channels with a residual add, then a per-frame Linear
/// projection of the channels.</summary>
[Quantize(Weights = QInt8)]
public partial class ConvAudioBlock : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> expand, contract, project;

    public ConvAudioBlock(long channels = 16, long hidden = 32, long outputs = 8) : base(nameof(ConvAudioBlock))
    {
        expand = Conv1d(channels, hidden, 3, padding: 1, padding_mode: PaddingModes.Reflect);
        contract = Conv1d(hidden, channels, 3, padding: 2, dilation: 2);
        project = Linear(channels, outputs);
        RegisterComponents();
    }

    /// <summary>(batch, channels, time) to (batch, time, outputs).</summary>
    public override Tensor forward(Tensor frames)
    {
        Tensor hidden = gelu(expand.forward(frames));
        Tensor mixed = contract.forward(hidden).add_(frames);
        return project.forward(mixed.transpose(1, 2));
    }
}
