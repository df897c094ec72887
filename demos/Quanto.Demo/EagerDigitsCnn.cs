using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Demo;

/// <summary>The same CNN as <see cref="DigitsCnn"/> (same state-dict keys) with its layers held as
/// <c>Module&lt;Tensor, Tensor&gt;</c>, so that the eager <see cref="Quantizer.Quantize"/> can swap them: the demo's
/// cross-check that the generated code and the eager path give the same model.</summary>
internal sealed class EagerDigitsCnn : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> conv1;
    private readonly Module<Tensor, Tensor> conv2;
    private readonly Module<Tensor, Tensor> fc1;
    private readonly Module<Tensor, Tensor> fc2;

    public EagerDigitsCnn() : base(nameof(EagerDigitsCnn))
    {
        conv1 = Conv2d(1, 16, 3, padding: 1);
        conv2 = Conv2d(16, 32, 3, padding: 1);
        fc1 = Linear(32 * 7 * 7, 128);
        fc2 = Linear(128, 10);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor h = functional.max_pool2d(functional.relu(conv1.forward(x)), 2);
        h = functional.max_pool2d(functional.relu(conv2.forward(h)), 2);
        return fc2.forward(functional.relu(fc1.forward(h.flatten(1))));
    }
}
