using NUnit.Framework;
using Quanto.Quantization;

namespace Quanto.Tests.Quantization;

/// <summary>optimum-quanto's group choice: 128, else 96, 64, 32; rows up to 128 (or with no divisor) per channel.</summary>
public sealed class GroupSizeTests
{
    [TestCase(4096, 128)]
    [TestCase(11008, 128)] // 11008 = 86 * 128
    [TestCase(288, 96)]
    [TestCase(320, 64)]
    [TestCase(160, 32)]
    [TestCase(784, 784)] // MNIST input: 784 = 16 * 49, no divisor among 128/96/64/32 -> per channel
    [TestCase(128, 128)]
    [TestCase(100, 100)]
    [TestCase(8, 8)]
    public void DefaultChoice(long rowLength, int expected) =>
        Assert.That(GroupSize.Resolve(rowLength), Is.EqualTo(expected));

    [TestCase(512, 64, 64)]
    [TestCase(96, 64, 32)] // 96 > 64 and 96 % 64 != 0; 64 - 32 = 32 divides 96
    [TestCase(40, 8, 8)]
    [TestCase(36, 8, 36)]
    public void RequestedChoice(long rowLength, int requested, int expected)
    {
        int group = GroupSize.Resolve(rowLength, requested);
        Assert.That(group, Is.EqualTo(expected));
        Assert.That(rowLength % group, Is.Zero);
    }
}
