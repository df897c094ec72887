// --- README: generator class ---
using Quanto;
using static Quanto.QType;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static TorchSharp.torch.nn.functional;

namespace MyModels;

[Quantize(Weights = QInt4, Group = 32)]                                                    // class default
public partial class Mlp : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> fc1 = Linear(64, 128), fc2 = Linear(128, 64);
    [Quantize(Weights = QInt8)] private readonly Module<Tensor, Tensor> head = Linear(64, 10); // per-layer override
    [NoQuantize] private readonly Module<Tensor, Tensor> norm = LayerNorm(64);                 // stays float

    public Mlp() : base(nameof(Mlp)) => RegisterComponents();

    public override Tensor forward(Tensor x) => head.forward(norm.forward(Hidden(x)));

    private Tensor Hidden(Tensor x) => relu(fc2.forward(relu(fc1.forward(x))));   // quantized too: forward calls it
}
// --- end ---
