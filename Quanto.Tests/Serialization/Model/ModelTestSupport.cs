using Quanto.Nn;
using Quanto.Tensors;
using Quanto.Tests.TestSupport;
using static Quanto.Tests.Serialization.SerializationTestUtil;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Serialization;

/// <summary>Linear -> LayerNorm -> Linear: the norm stays float under weights-only quantization (other tensors of
/// the model), and becomes a QLayerNorm when activations are quantized.</summary>
internal sealed class NormMlp : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> fc1;
    private readonly Module<Tensor, Tensor> norm;
    private readonly Module<Tensor, Tensor> fc2;

    public NormMlp(long inputs = 256, long hidden = 64, long outputs = 10) : base(nameof(NormMlp))
    {
        fc1 = Linear(inputs, hidden);
        norm = LayerNorm(hidden);
        fc2 = Linear(hidden, outputs);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => fc2.forward(norm.forward(functional.relu(fc1.forward(x))));
}

/// <summary>fc: Linear(4, 3) -> relu -> head: Linear(3, 2), the model of the hand-built optimum-quanto file.</summary>
internal sealed class TwoLayer : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> fc;
    private readonly Module<Tensor, Tensor> head;

    public TwoLayer() : base(nameof(TwoLayer))
    {
        fc = Linear(4, 3);
        head = Linear(3, 2);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => head.forward(functional.relu(fc.forward(x)));
}

/// <summary>Model-level comparisons: every tensor a quantized model holds, and forward outputs.</summary>
internal static class ModelCompare
{
    /// <summary>The model's tensors by key: model.state_dict() plus each frozen module's quantized parts
    /// (data/scale or packed/scale/shift, and the group size), read from the objects, not from a file.</summary>
    public static SortedDictionary<string, byte[]> Snapshot(Module model)
    {
        var all = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        foreach ((string key, Tensor t) in model.state_dict())
            all[key] = [.. Encoding(t.dtype, t.shape), .. Bytes(t)];
        foreach ((string path, Module module) in model.named_modules())
        {
            if (module is not QModule { QuantizedWeight: QuantizedWeight w } q) continue;
            string prefix = path + ".quantized.";
            all[prefix + "qtype"] = [(byte)w.QType];
            switch (w)
            {
                case WeightQBytesTensor b:
                    all[prefix + "data"] = [.. Encoding(b.Data.dtype, b.Data.shape), .. Bytes(b.Data)];
                    all[prefix + "scale"] = [.. Encoding(b.Scale.dtype, b.Scale.shape), .. Bytes(b.Scale)];
                    break;
                case WeightQBitsTensor p:
                    all[prefix + "group"] = BitConverter.GetBytes(p.GroupSize);
                    all[prefix + "packed"] = [.. Encoding(p.Packed.dtype, p.Packed.shape), .. Bytes(p.Packed)];
                    all[prefix + "scale"] = [.. Encoding(p.Scale.dtype, p.Scale.shape), .. Bytes(p.Scale)];
                    all[prefix + "shift"] = [.. Encoding(p.Shift.dtype, p.Shift.shape), .. Bytes(p.Shift)];
                    break;
                default:
                    throw new InvalidOperationException(w.GetType().Name);
            }
            all[prefix + "frozen"] = [q.IsFrozen ? (byte)1 : (byte)0];
        }
        return all;
    }

    private static byte[] Encoding(ScalarType dtype, long[] shape) =>
        [(byte)dtype, .. shape.SelectMany(BitConverter.GetBytes)];

    /// <summary>Path -> (weights, activations, frozen, requested group size) of every quantized module.</summary>
    public static string[] Modules(Module model) => Quantizer.QuantizedModules(model)
        .Select(m => $"{m.Path}:{m.GetType().Name}:{m.WeightQType}:{m.ActivationQType}:{m.IsFrozen}:{m.GroupSize}")
        .ToArray();

    /// <summary>The raw bytes of the model's output on <paramref name="input"/> (eval, no grad).</summary>
    public static byte[] Output(Module<Tensor, Tensor> model, Tensor input)
    {
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return Bytes(model.forward(input));
    }

    public static Tensor Input(bool conv, long seed = 3) =>
        Seeded.Uniform(conv ? [2, 1, 10, 10] : [3, 256], seed);
}
