using NUnit.Framework;
using Quanto.Nn;
using Quanto.Tests.TestSupport;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Nn;

/// <summary>Frozen QConv1d against TorchSharp's float Conv1d carrying the dequantized weight, for every padding
/// mode, on the direct-convolution and the unfold + SIMD kernel paths.</summary>
public sealed class QConv1dTests
{
    // 128*64*9 = 73728 weights: above DirectConvolutionLimit (unfold + the CPU kernels); the others run direct.
    [TestCase(128, 64, 9, 1, 4, 1, PaddingModes.Zeros, QType.QInt8)]
    [TestCase(128, 64, 9, 2, 3, 2, PaddingModes.Reflect, QType.QInt4)]
    [TestCase(128, 64, 9, 1, 4, 1, PaddingModes.Circular, QType.QFloat8E4M3Fn)]
    [TestCase(4, 8, 3, 1, 2, 1, PaddingModes.Replicate, QType.QInt8)]
    [TestCase(4, 8, 5, 2, 2, 2, PaddingModes.Reflect, QType.QInt2)]
    [TestCase(4, 8, 3, 1, 1, 1, PaddingModes.Circular, QType.QInt4)]
    [TestCase(4, 8, 3, 3, 1, 1, PaddingModes.Constant, QType.QFloat8E5M2)]
    public void FrozenMatchesTheFloatConv1dAtTheDequantizedWeight(int cin, int cout, int kernel, int stride,
        int padding, int dilation, PaddingModes mode, QType qtype)
    {
        Conv1d Create() => Conv1d(cin, cout, kernel, stride: stride, padding: padding, dilation: dilation,
            padding_mode: mode);
        AssertMatchesFloat(Create, qtype, [2, cin, 23]).Dispose();
    }

    [TestCase(PaddingModes.Zeros, 4, 1)] // even kernel: "same" pads 1 before, 2 after
    [TestCase(PaddingModes.Zeros, 3, 2)]
    [TestCase(PaddingModes.Reflect, 4, 1)]
    [TestCase(PaddingModes.Replicate, 3, 3)]
    [TestCase(PaddingModes.Circular, 4, 1)]
    public void PaddingSameKeepsTheLength(PaddingModes mode, int kernel, int dilation)
    {
        Conv1d Create() => Conv1d(3, 6, kernel, Padding.Same, dilation: dilation, padding_mode: mode);
        using Tensor y = AssertMatchesFloat(Create, QType.QInt8, [2, 3, 17]);
        Assert.That(y.shape[2], Is.EqualTo(17));
    }

    [Test]
    public void PaddingValidAndGroupsAndNoBias()
    {
        AssertMatchesFloat(() => Conv1d(8, 12, 3, Padding.Valid, groups: 4, bias: false), QType.QInt4, [3, 8, 11])
            .Dispose();
    }

    [Test]
    public void UnbatchedInputGivesAnUnbatchedOutput()
    {
        using Tensor y = AssertMatchesFloat(() => Conv1d(3, 5, 3, padding: 1, padding_mode: PaddingModes.Reflect),
            QType.QInt8, [3, 12]);
        Assert.That(y.shape, Is.EqualTo(new long[] { 5, 12 }));
    }

    [TestCase(QType.QInt8)]
    [TestCase(QType.QInt4)]
    public void DynamicInferenceEqualsFrozen(QType qtype)
    {
        using var conv = Seeded.Create(() => Conv1d(128, 64, 9, padding: 4, padding_mode: PaddingModes.Replicate));
        using var q = new QConv1d(conv, qtype, path: "conv");
        q.eval();
        using Tensor x = Seeded.Uniform([2, 128, 30]);
        Tensor before;
        using (no_grad()) before = q.forward(x);
        q.Freeze();
        using Tensor after = q.forward(x);
        Assert.That(Reference.BitEqual(after, before), Is.True);
        before.Dispose();
    }

    [Test]
    public void TrainingUsesTheFakeQuantizedWeightWithAStraightThroughGradient()
    {
        using var conv = Seeded.Create(() => Conv1d(4, 6, 3, padding: 2, padding_mode: PaddingModes.Circular));
        using var q = new QConv1d(conv, QType.QInt4, path: "conv");
        q.train();
        using Tensor x = Seeded.Uniform([2, 4, 9]);
        using Tensor y = q.forward(x);
        using Tensor w = Quanto.Quantization.WeightQuantizer.Quantize(conv.weight!, QType.QInt4).Dequantize();
        using Tensor expected = functional.conv1d(functional.pad(x, [2, 2], PaddingModes.Circular), w, conv.bias);
        Assert.That(Reference.MaxRelativeError(y, expected), Is.LessThanOrEqualTo(1e-6));
        y.sum().backward();
        Assert.That(conv.weight!.grad, Is.Not.Null, "the gradient reaches the float weight");
    }

    /// <summary>
    /// Quantizes and freezes a fresh convolution, runs it on a seeded input of <paramref name="inputShape"/>, and
    /// compares with an identical float convolution whose weight is the dequantized one.
    /// </summary>
    internal static Tensor AssertMatchesFloat<T>(Func<T> create, QType qtype, long[] inputShape)
        where T : Convolution
    {
        using T conv = Seeded.Create(create);
        using T reference = Seeded.Create(create);
        using QConvolution q = conv is Conv1d c1 ? new QConv1d(c1, qtype, path: "conv")
            : new QConv2d((Conv2d)(object)conv, qtype, path: "conv");
        q.eval();
        q.Freeze();
        using (no_grad())
        {
            using Tensor w = q.QuantizedWeight!.Dequantize();
            reference.weight!.copy_(w);
        }
        using Tensor x = Seeded.Uniform(inputShape);
        using Tensor expected = reference.forward(x);
        Tensor actual = q.forward(x);
        Assert.That(actual.shape, Is.EqualTo(expected.shape));
        Assert.That(Reference.MaxRelativeError(actual, expected), Is.LessThanOrEqualTo(1e-5));
        return actual;
    }
}
