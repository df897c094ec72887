using NUnit.Framework;
using Quanto.Nn;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Nn;

/// <summary>Quantizer.ModelBytes counts the float copy a small frozen convolution runs on (made at its first
/// forward), hand-computed; with kernelLayouts, the kernels' own layouts too.</summary>
public sealed class QConvModelBytesTests
{
    // Conv2d(3, 8, 3) qint8: 216 int8 codes + 8 fp32 scales = 248; fp32 bias 32; input/output scales 8 -> 288.
    // Its first forward makes the direct convolution's float copy: 216 * 4 = 864 more.
    [Test]
    public void ASmallConv2dsFloatCopyIsCounted() =>
        AssertBytes(Sequential(("conv", Conv2d(3, 8, 3))), ones(1, 3, 6, 6), 288, 864);

    // Conv1d(4, 8, 3) qint8: 96 codes + 32 = 128; bias 32; scales 8 -> 168. The copy is of its (8, 4, 1, 3) kernel
    // view: 96 * 4 = 384 more.
    [Test]
    public void ASmallConv1dsFloatCopyOfItsKernelViewIsCounted() =>
        AssertBytes(Sequential(("conv", Conv1d(4, 8, 3))), ones(1, 4, 9), 168, 384);

    [Test]
    public void KernelLayoutsAreCountedWhenAsked()
    {
        // 256 x 512 int8 weights (over CpuKernels.FloatCopyLimit): the CPU kernels run them from their own layout,
        // made at the first forward, and keep no float copy.
        using var model = Sequential(("fc", Linear(512, 256)));
        model.eval();
        Quantizer.Quantize(model, weights: QType.QInt8);
        Quantizer.Freeze(model);
        long frozen = Quantizer.ModelBytes(model);
        Assert.That(Quantizer.ModelBytes(model, kernelLayouts: true), Is.EqualTo(frozen), "nothing prepared yet");
        using (no_grad()) model.forward(ones(2, 512)).Dispose();
        var weight = Quantizer.QuantizedModules(model).Single().QuantizedWeight!;
        Assert.That(weight.PreparedByteSize, Is.GreaterThanOrEqualTo(512 * 256), "at least one byte per weight");
        Assert.That(Quantizer.ModelBytes(model), Is.EqualTo(frozen), "no float copy for a Linear");
        Assert.That(Quantizer.ModelBytes(model, kernelLayouts: true), Is.EqualTo(frozen + weight.PreparedByteSize));
    }

    [Test]
    public void TheCpuKernelsFloatCopyOfASmallLinearIsCounted()
    {
        // 128 x 512 = 64 Ki weights, at CpuKernels.FloatCopyLimit: the CPU kernels also keep a float32 copy
        // (libtorch runs it at 16 rows and more), 4 bytes per weight.
        using var model = Sequential(("fc", Linear(512, 128)));
        model.eval();
        Quantizer.Quantize(model, weights: QType.QInt8);
        Quantizer.Freeze(model);
        long frozen = Quantizer.ModelBytes(model);
        using (no_grad()) model.forward(ones(2, 512)).Dispose();
        Assert.That(Quantizer.ModelBytes(model), Is.EqualTo(frozen + 512 * 128 * 4));
    }

    private static void AssertBytes(Module<Tensor, Tensor> model, Tensor input, long frozen, long floatCopy)
    {
        using (model)
        using (input)
        {
            model.eval();
            Quantizer.Quantize(model, weights: QType.QInt8);
            Quantizer.Freeze(model);
            Assert.That(Quantizer.ModelBytes(model), Is.EqualTo(frozen));
            using (no_grad()) model.forward(input).Dispose();
            Assert.That(Quantizer.ModelBytes(model), Is.EqualTo(frozen + floatCopy));
            Assert.That(Quantizer.QuantizedModules(model).Single(), Is.InstanceOf<QConvolution>());
        }
    }
}
