using NUnit.Framework;
using Quanto.Nn;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Nn;

/// <summary>Frozen QConv2d on each of its paths against libtorch's conv2d at the dequantized weight.</summary>
public sealed class QConv2dTests
{
    // 64*128*3*3 = 73728 weights: above DirectConvolutionLimit, so unfold + the SIMD matmul kernels.
    [TestCase(64, 128, 3, 2, 1, 1, QType.QInt8)]
    [TestCase(64, 128, 3, 1, 2, 2, QType.QInt4)]
    [TestCase(64, 128, 3, 1, 1, 1, QType.QFloat8E4M3Fn)]
    // Small: the direct convolution on a float copy.
    [TestCase(3, 8, 3, 1, 1, 1, QType.QInt8)]
    [TestCase(8, 16, 5, 2, 0, 1, QType.QInt2)]
    public void FrozenMatchesConvAtTheDequantizedWeight(int cin, int cout, int kernel, int stride, int padding, int dilation,
        QType qtype)
    {
        using var model = Seeded.Create(() => Sequential(("conv", Conv2d(cin, cout, kernel, stride: stride,
            padding: padding, dilation: dilation))));
        model.eval();
        Quantizer.Quantize(model, weights: qtype);
        Quantizer.Freeze(model);
        var conv = (QConv2d)model.named_modules().Single().module;
        Assert.That(conv.QuantizedWeight!.NumberOfElements > QConv2d.DirectConvolutionLimit,
            Is.EqualTo(cin * cout * kernel * kernel > QConv2d.DirectConvolutionLimit));

        using Tensor x = Seeded.Uniform([2, cin, 19, 17]);
        using Tensor actual = model.forward(x);
        using Tensor w = conv.QuantizedWeight.Dequantize();
        using Tensor expected = functional.conv2d(x, w, conv.FloatBias, [stride, stride], [padding, padding],
            [dilation, dilation]);
        Assert.That(actual.shape, Is.EqualTo(expected.shape));
        Assert.That(Reference.MaxRelativeError(actual, expected), Is.LessThanOrEqualTo(1e-5));
    }

    [Test]
    public void GroupedConvolutionUsesTheDequantizedWeight()
    {
        using var model = Seeded.Create(() => Sequential(("conv", Conv2d(8, 16, 3, groups: 4))));
        model.eval();
        Quantizer.Quantize(model, weights: QType.QInt8);
        Quantizer.Freeze(model);
        var conv = (QConv2d)model.named_modules().Single().module;
        using Tensor x = Seeded.Uniform([1, 8, 10, 10]);
        using Tensor w = conv.QuantizedWeight!.Dequantize();
        using Tensor expected = functional.conv2d(x, w, conv.FloatBias, groups: 4);
        using Tensor actual = model.forward(x);
        Assert.That(Reference.MaxRelativeError(actual, expected), Is.LessThanOrEqualTo(1e-5));
    }

    [Test]
    public void WrongInputChannelsAreAClearError()
    {
        using var model = Seeded.Create(() => Sequential(("conv", Conv2d(3, 8, 3))));
        model.eval();
        Quantizer.Quantize(model, weights: QType.QInt8);
        Quantizer.Freeze(model);
        var error = Assert.Throws<ArgumentException>(() => model.forward(ones(1, 4, 8, 8)))!;
        Assert.That(error.Message, Does.Contain("[1, 4, 8, 8]").And.Contain("[8, 3, 3, 3]"));
    }
}
