using TorchSharp.Modules;
using static Quanto.QType;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Demo;

/// <summary>
/// A small MNIST CNN: two conv blocks, then two linear layers (~215k weights). Annotated: the generator writes its
/// ForwardQuantized, Quantize, Calibrate, Freeze, SaveQuantized/LoadQuantized and QuantizationMap at build time (read
/// them under obj/.../generated). The attribute picks the layers (all four) and their default qtype; each demo
/// configuration overrides the qtypes with <c>Quantize(weights, activations)</c>. Fields keep TorchSharp's own layer
/// types, so the float model trains and runs as usual through <c>forward</c>.
/// </summary>
[Quantize(Weights = QInt4)]
public partial class DigitsCnn : Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly Conv2d conv2;
    private readonly Linear fc1;
    private readonly Linear fc2;

    public DigitsCnn() : base(nameof(DigitsCnn))
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
