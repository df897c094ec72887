using NUnit.Framework;
using Quanto.Kernels;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels;

/// <summary>
/// <see cref="TensorSizes"/>, the per-call paths' way to read sizes without TorchSharp's costly <c>Tensor.shape</c>,
/// against <c>Tensor.shape</c> itself.
/// </summary>
[TestFixture]
public sealed class TensorSizesTests
{
    private static readonly long[][] Shapes = [[], [7], [3, 5], [2, 1, 2048], [2, 3, 0, 4], [1, 2, 3, 4, 5]];

    [TestCaseSource(nameof(Shapes))]
    public void OfGivesTheShape(long[] shape)
    {
        using Tensor t = zeros(shape);
        Assert.That(TensorSizes.Of(t), Is.EqualTo(t.shape));
    }

    [Test]
    public void OfReadsStridedViews()
    {
        using Tensor t = zeros(4, 6, 8);
        using Tensor view = t.transpose(0, 2).narrow(1, 1, 3);
        Assert.That(TensorSizes.Of(view), Is.EqualTo(new long[] { 8, 3, 4 }));
    }

    [TestCaseSource(nameof(Shapes))]
    public void WithLastReplacesTheLastSize(long[] shape)
    {
        using Tensor t = zeros(shape);
        if (shape.Length == 0)
        {
            Assert.That(() => TensorSizes.WithLast(t, 3), Throws.ArgumentException.With.Message.Contains("scalar"));
            return;
        }
        long[] expected = [.. t.shape[..^1], 11];
        Assert.That(TensorSizes.WithLast(t, 11), Is.EqualTo(expected));
    }
}
