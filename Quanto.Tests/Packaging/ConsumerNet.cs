using TorchSharp.Modules;
using static Quanto.QType;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Packaging;

/// <summary>The model the package consumer declares (same source there): the in-solution reference.</summary>
[Quantize(Weights = QInt4)]
public partial class ConsumerNet : Module<Tensor, Tensor>
{
    private readonly Linear fc1;
    private readonly Linear fc2;

    public ConsumerNet() : base(nameof(ConsumerNet))
    {
        fc1 = Linear(256, 64);
        fc2 = Linear(64, 10);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => fc2.forward(functional.relu(fc1.forward(x)));
}
