using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Demo;

/// <summary>A small MNIST CNN: two conv blocks, then two linear layers (~215k weights).</summary>
internal sealed class DigitsCnn : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> conv1;
    private readonly Module<Tensor, Tensor> conv2;
    private readonly Module<Tensor, Tensor> fc1;
    private readonly Module<Tensor, Tensor> fc2;

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
