using TorchSharp.Modules;
using static Quanto.QType;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static TorchSharp.torch.nn.functional;

namespace Quanto.Tests.Generators.Samples;

/// <summary>Two convolutions and a linear head, with a block-bodied forward.</summary>
[Quantize(Weights = QInt8)]
public partial class Cnn : Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly Conv2d conv2;
    private readonly Linear fc;

    public Cnn() : base(nameof(Cnn))
    {
        conv1 = Conv2d(3, 8, 3, padding: 1);
        conv2 = Conv2d(8, 16, 3, stride: 2);
        fc = Linear(16 * 3 * 3, 10);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        // 8x8 images: conv1 keeps the size, conv2 (stride 2, no padding) makes it 3x3.
        Tensor h = relu(conv1.forward(x));
        h = relu(this.conv2.call(h));
        return fc.forward(h.flatten(1));
    }
}
