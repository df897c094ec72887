using NUnit.Framework;
using Quanto.Nn;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Nn;

/// <summary>Inputs libtorch would reject (or abort on): clear errors naming the module and the shapes, before any
/// libtorch call, frozen and in dynamic mode alike.</summary>
public sealed class QConv1dBadInputTests
{
    [TestCase(true)]
    [TestCase(false)]
    public void WrongChannelsOrRankNameTheModuleAndTheExpectedShape(bool frozen)
    {
        using QConv1d conv = Quantized(Conv1d(4, 8, 3), frozen);
        foreach (Tensor bad in new[] { ones(2, 5, 10), ones(2, 4, 10, 1), ones(10) })
        {
            var error = Assert.Throws<ArgumentException>(() => conv.forward(bad))!;
            Assert.That(error.Message, Does.Contain("QConv1d 'audio.conv' (4 -> 8, kernel 3)")
                .And.Contain("(batch, 4, length) or (4, length)")
                .And.Contain(Quanto.Tensors.QuantizedWeight.FormatShape(bad.shape)));
            bad.Dispose();
        }
    }

    [Test]
    public void AnIntegerInputIsAClearError()
    {
        using QConv1d conv = Quantized(Conv1d(4, 8, 3), frozen: true);
        var error = Assert.Throws<ArgumentException>(() => conv.forward(ones([2, 4, 10], ScalarType.Int64)))!;
        Assert.That(error.Message, Does.Contain("'audio.conv'").And.Contain("float input").And.Contain("Int64"));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void AnInputShorterThanTheKernelIsAClearError(bool frozen)
    {
        using QConv1d conv = Quantized(Conv1d(4, 8, 5, dilation: 2), frozen);
        var error = Assert.Throws<ArgumentException>(() => conv.forward(ones(1, 4, 6)))!;
        Assert.That(error.Message, Does.Contain("'audio.conv'").And.Contain("[1, 4, 6]").And.Contain("5 kernel")
            .And.Contain("dilated kernel 9"));
    }

    [TestCase(PaddingModes.Reflect, 3, "reflect padding 3 needs at least 4 elements")]
    [TestCase(PaddingModes.Circular, 4, "circular padding 4 needs at least 4 elements")]
    public void APaddingLargerThanTheInputIsAClearError(PaddingModes mode, int padding, string why)
    {
        using QConv1d conv = Quantized(Conv1d(2, 2, 3, padding: padding, padding_mode: mode), frozen: true);
        var error = Assert.Throws<ArgumentException>(() => conv.forward(ones(1, 2, 3)))!;
        Assert.That(error.Message, Does.Contain("'audio.conv'").And.Contain(why));
    }

    private static QConv1d Quantized(TorchSharp.Modules.Conv1d source, bool frozen)
    {
        var conv = new QConv1d(source, QType.QInt8, path: "audio.conv");
        conv.eval();
        if (frozen) conv.Freeze();
        return conv;
    }
}
