using NUnit.Framework;
using Quanto.Nn;
using Quanto.Tests.Generators.Samples;
using TorchSharp;
using static TorchSharp.torch;

namespace Quanto.Tests.Generators;

/// <summary>
/// Issue #13 case 3: <c>.to(dtype)</c> on a [Quantize] model before Quantize, after it, after Freeze and after
/// LoadQuantized (load, then move: the normal deployment order). Each order keeps ForwardQuantized working and equal,
/// bit for bit, to the eager path that did the same (its quantized modules are submodules, so TorchSharp's
/// <c>.to()</c> reaches them); the twins share the layers' new parameters, and the moved model saves.
/// </summary>
[TestFixture]
public sealed class MoveTests : TestSupport.TempFolderTests
{
    private const ScalarType Half = ScalarType.BFloat16;

    public enum Order
    {
        BeforeQuantize,
        AfterQuantize,
        AfterFreeze,
        AfterLoadQuantized,
    }

    [TestCase(Order.BeforeQuantize)]
    [TestCase(Order.AfterQuantize)]
    [TestCase(Order.AfterFreeze)]
    [TestCase(Order.AfterLoadQuantized)]
    public void To_dtype_in_every_order_keeps_ForwardQuantized_equal_to_the_eager_path(Order order)
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        manual_seed(3);
        using var model = new Mlp();
        var eager = new MlpEager();
        eager.load_state_dict(model.state_dict());
        var swappedOut = eager.named_modules().Select(m => m.module).ToList();
        Tensor x = randn(4, 64);

        if (order == Order.AfterLoadQuantized)
        {
            using var saved = new Mlp();
            saved.load_state_dict(model.state_dict());
            saved.Quantize();
            saved.Freeze();
            saved.SaveQuantized(Path.Combine(Folder, "mlp.qnt"));
            model.LoadQuantized(Path.Combine(Folder, "mlp.qnt"));
        }
        if (order == Order.BeforeQuantize) Move(model, eager);
        if (order != Order.AfterLoadQuantized) model.Quantize();
        QuantizeEager(eager);
        if (order == Order.AfterQuantize) Move(model, eager);
        if (order != Order.AfterLoadQuantized)
        {
            model.Freeze();
        }
        Quantizer.Freeze(eager);
        if (order is Order.AfterFreeze or Order.AfterLoadQuantized) Move(model, eager);

        Tensor input = x.to(Half);
        Assert.That(Values(model.ForwardQuantized(input)), Is.EqualTo(Values(eager.forward(input))));
        QModule fc1 = model.QuantizedModules().Single(m => m.Path == "fc1");
        Assert.That(fc1.FloatBias!.Handle, Is.EqualTo(model.state_dict()["fc1.bias"].Handle),
            "the twin shares the layer's moved bias");
        Assert.That(fc1.QuantizedWeight!.DType, Is.EqualTo(Half));
        Assert.DoesNotThrow(() => model.SaveQuantized(Path.Combine(Folder, "moved.qnt")));
        GC.KeepAlive(swappedOut);
    }

    [Test]
    public void A_device_move_to_the_same_device_changes_nothing()
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        using var model = new Block();
        model.eval();
        model.Quantize();
        using (model.Calibrate()) model.ForwardQuantized(randn(8, 32));
        model.Freeze();
        Tensor x = randn(2, 32);
        float[] before = Values(model.ForwardQuantized(x));
        model.to(CPU);
        Assert.That(Values(model.ForwardQuantized(x)), Is.EqualTo(before));
    }

    private static void Move(nn.Module model, nn.Module eager)
    {
        model.to(Half);
        eager.to(Half);
    }

    /// <summary>Mlp's attributes on the eager twin (see BehaviourTests): qint4 group 32, head qint8, norm float.</summary>
    private static void QuantizeEager(nn.Module eager)
    {
        Quantizer.Quantize(eager, QType.QInt4, exclude: ["head", "norm"], groupSize: 32);
        Quantizer.Quantize(eager, QType.QInt8, include: ["head"]);
        eager.eval();
    }

    private static float[] Values(Tensor t) => t.to(ScalarType.Float32).contiguous().data<float>().ToArray();
}
