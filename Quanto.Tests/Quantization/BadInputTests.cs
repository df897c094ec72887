using NUnit.Framework;
using Quanto.Quantization;
using static TorchSharp.torch;

namespace Quanto.Tests.Quantization;

/// <summary>Bad input fails early with a message that says what is wrong and what to do.</summary>
public sealed class BadInputTests
{
    [TestCase(QType.QInt8)]
    [TestCase(QType.QInt4)]
    [TestCase(QType.QFloat8E4M3Fn)]
    public void NaNInWeightIsRejectedWithItsPosition(QType qtype)
    {
        using Tensor w = ones(4, 16);
        w[2, 5] = tensor(float.NaN);
        w[3, 1] = tensor(float.PositiveInfinity);
        var error = Assert.Throws<ArgumentException>(() => WeightQuantizer.Quantize(w, qtype))!;
        Assert.That(error.Message, Does.Contain("2 NaN or infinite").And.Contain("[2, 5]").And.Contain("[4, 16]"));
    }

    [Test]
    public void EmptyWeightIsRejected()
    {
        using Tensor w = zeros(0, 16);
        var error = Assert.Throws<ArgumentException>(() => WeightQuantizer.Quantize(w, QType.QInt8))!;
        Assert.That(error.Message, Does.Contain("empty").And.Contain("[0, 16]"));
    }

    [TestCase(ScalarType.Int32)]
    [TestCase(ScalarType.Float64)]
    [TestCase(ScalarType.Int8)]
    public void UnsupportedDtypesAreRejected(ScalarType dtype)
    {
        using Tensor w = ones([4, 16], dtype);
        var error = Assert.Throws<ArgumentException>(() => WeightQuantizer.Quantize(w, QType.QInt4))!;
        Assert.That(error.Message, Does.Contain(dtype.ToString()).And.Contain("Float32"));
    }

    [Test]
    public void OneDimensionalWeightIsRejected()
    {
        using Tensor w = ones(16);
        var error = Assert.Throws<ArgumentException>(() => WeightQuantizer.Quantize(w, QType.QInt8))!;
        Assert.That(error.Message, Does.Contain("at least 2 dimensions"));
    }

    [TestCase(0)]
    [TestCase(-8)]
    [TestCase(12)]
    [TestCase(100)]
    public void GroupSizeMustBeAPositiveMultipleOf8(int groupSize)
    {
        using Tensor w = ones(4, 256);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => WeightQuantizer.Quantize(w, QType.QInt4, groupSize))!;
        Assert.That(error.Message, Does.Contain("multiple of 8").And.Contain(groupSize.ToString()));
        // Validated for 8-bit qtypes too, where it is otherwise ignored.
        Assert.Throws<ArgumentOutOfRangeException>(() => WeightQuantizer.Quantize(w, QType.QInt8, groupSize));
    }

    [Test]
    public void ExplicitGroupThatDoesNotDivideTheRowIsAnErrorInTheAffineQuantizer()
    {
        using Tensor w = ones(4, 100);
        var error = Assert.Throws<ArgumentException>(() => AffineQuantizer.Quantize(w, QType.QInt4, 64))!;
        Assert.That(error.Message, Does.Contain("64").And.Contain("100").And.Contain("GroupSize.Resolve"));
    }

    [Test]
    public void OptimizerOfTheWrongFamilyIsRejected()
    {
        using Tensor w = ones(4, 256);
        var error = Assert.Throws<ArgumentException>(() =>
            WeightQuantizer.Quantize(w, QType.QInt8, optimizer: new HqqOptimizer()))!;
        Assert.That(error.Message, Does.Contain("HqqOptimizer").And.Contain("qint8").And.Contain("AbsmaxOptimizer"));
        Assert.Throws<ArgumentException>(() => WeightQuantizer.Quantize(w, QType.QInt4, optimizer: new AbsmaxOptimizer()));
        Assert.Throws<ArgumentException>(() =>
            WeightQuantizer.Quantize(w, QType.QInt4, optimizer: new HqqOptimizer(), shiftMode: ShiftMode.ZeroPoint));
    }

    [Test]
    public void UndefinedQTypeIsRejected()
    {
        using Tensor w = ones(4, 16);
        Assert.Throws<ArgumentOutOfRangeException>(() => WeightQuantizer.Quantize(w, (QType)42));
    }

    [Test]
    public void SymmetricAndAffineQuantizersRejectTheOtherFamily()
    {
        using Tensor w = ones(4, 16);
        Assert.Throws<ArgumentException>(() => SymmetricQuantizer.Quantize(w, QType.QInt4));
        Assert.Throws<ArgumentException>(() => AffineQuantizer.Quantize(w, QType.QInt8, 16));
    }
}
