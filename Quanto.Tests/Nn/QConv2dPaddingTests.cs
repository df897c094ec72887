using NUnit.Framework;
using Quanto.Nn;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Nn;

/// <summary>QConv2d's padding modes against TorchSharp's float Conv2d carrying the dequantized weight.</summary>
public sealed class QConv2dPaddingTests
{
    [TestCase(PaddingModes.Zeros, QType.QInt8)]
    [TestCase(PaddingModes.Reflect, QType.QInt4)]
    [TestCase(PaddingModes.Replicate, QType.QInt8)]
    [TestCase(PaddingModes.Circular, QType.QInt2)]
    [TestCase(PaddingModes.Constant, QType.QFloat8E4M3Fn)]
    public void NumericPaddingInEveryMode(PaddingModes mode, QType qtype)
    {
        // Height padding 2, width 1, on a 3x2 kernel with stride (1, 2).
        QConv1dTests.AssertMatchesFloat(() => Conv2d(3, 6, (3, 2), stride: (1, 2), padding: (2, 1), padding_mode: mode),
            qtype, [2, 3, 9, 8]).Dispose();
    }

    [TestCase(PaddingModes.Reflect)]
    [TestCase(PaddingModes.Circular)]
    public void NonZeroPaddingOnTheUnfoldPath(PaddingModes mode)
    {
        // 128*64*3*3 = 73728 weights: unfold + the SIMD matmul kernels.
        QConv1dTests.AssertMatchesFloat(() => Conv2d(64, 128, 3, padding: 1, padding_mode: mode), QType.QInt4,
            [1, 64, 10, 9]).Dispose();
    }

    [TestCase(PaddingModes.Zeros, 3, 3)]
    [TestCase(PaddingModes.Zeros, 3, 2)] // asymmetric in width: an explicit zero pad
    [TestCase(PaddingModes.Reflect, 3, 3)]
    [TestCase(PaddingModes.Replicate, 2, 2)]
    [TestCase(PaddingModes.Circular, 3, 3)]
    public void PaddingSameKeepsTheSize(PaddingModes mode, int kh, int kw)
    {
        using Tensor y = QConv1dTests.AssertMatchesFloat(() => Conv2d(3, 4, (kh, kw), Padding.Same, padding_mode: mode),
            QType.QInt8, [2, 3, 7, 6]);
        Assert.That(y.shape, Is.EqualTo(new long[] { 2, 4, 7, 6 }));
    }

    [Test]
    public void UnbatchedInput()
    {
        using Tensor y = QConv1dTests.AssertMatchesFloat(() => Conv2d(3, 4, 3, padding: 1,
            padding_mode: PaddingModes.Replicate), QType.QInt8, [3, 6, 5]);
        Assert.That(y.shape, Is.EqualTo(new long[] { 4, 6, 5 }));
    }

    [Test]
    public void SameWithANonZeroModeAndUnequalPaddingIsRefused()
    {
        // TorchSharp 0.107 pads the 7x6 input of this module to 8x8 and returns 6x7 (height and width swapped).
        using var conv = Conv2d(3, 4, (3, 2), Padding.Same, padding_mode: PaddingModes.Reflect);
        var error = Assert.Throws<NotSupportedException>(() => _ = new QConv2d(conv, QType.QInt8, path: "stem"))!;
        Assert.That(error.Message, Does.Contain("QConv2d 'stem'").And.Contain("same").And.Contain("reflect")
            .And.Contain("3x2"));
    }
}
