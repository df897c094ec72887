using NUnit.Framework;
using Quanto.Nn;
using Quanto.Quantization;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Nn;

/// <summary>Bad indices and unsupported Embedding options: clear exceptions naming the module, never a libtorch
/// abort.</summary>
public sealed class QEmbeddingBadInputTests
{
    [TestCase(10L, true)]
    [TestCase(-1L, true)]
    [TestCase(12L, false)]
    [TestCase(-3L, false)]
    public void AnIndexOutsideTheTableNamesTheModuleTheIndexAndTheSize(long bad, bool frozen)
    {
        using var source = Embedding(10, 4);
        using var embedding = new QEmbedding(source, QType.QInt4, path: "encoder.word_embeddings");
        embedding.eval();
        if (frozen) embedding.Freeze();
        using var noGrad = no_grad();
        var error = Assert.Throws<ArgumentException>(() => embedding.forward(tensor(new[] { 0L, bad, 3L })))!;
        Assert.That(error.Message, Does.Contain("'encoder.word_embeddings'").And.Contain($"index {bad}")
            .And.Contain("table of 10 rows").And.Contain("0 to 9"));
    }

    [Test]
    public void IndicesMustBeIntegers()
    {
        using var source = Embedding(10, 4);
        using var embedding = new QEmbedding(source, QType.QInt8, path: "tokens");
        embedding.Freeze();
        var error = Assert.Throws<ArgumentException>(() => embedding.forward(tensor(new[] { 1f, 2f })))!;
        Assert.That(error.Message, Does.Contain("'tokens'").And.Contain("Int64 or Int32").And.Contain("Float32"));
    }

    [Test]
    public void TheFunctionalLookupChecksToo()
    {
        using var table = randn(6, 8);
        using var weight = WeightQuantizer.Quantize(table, QType.QInt8);
        var error = Assert.Throws<ArgumentException>(
            () => Functional.QuantizedOps.embedding(tensor(new[] { 6L }), weight))!;
        Assert.That(error.Message, Does.Contain("index 6").And.Contain("table of 6 rows"));
    }

    [Test]
    public void MaxNormIsRefusedWithWhatToDo()
    {
        using var source = Embedding(10, 4, max_norm: 1.0);
        var error = Assert.Throws<NotSupportedException>(() => _ = new QEmbedding(source, QType.QInt8, path: "emb"))!;
        Assert.That(error.Message, Does.Contain("'emb'").And.Contain("max_norm").And.Contain("exclude"));
    }

    [Test]
    public void GradientOptionsAreRefused()
    {
        using var sparse = Embedding(10, 4, sparse: true);
        Assert.That(Assert.Throws<NotSupportedException>(() => _ = new QEmbedding(sparse, QType.QInt8))!.Message,
            Does.Contain("sparse"));
        using var byFrequency = Embedding(10, 4, scale_grad_by_freq: true);
        Assert.That(Assert.Throws<NotSupportedException>(() => _ = new QEmbedding(byFrequency, QType.QInt8))!.Message,
            Does.Contain("scale_grad_by_freq"));
    }

    [Test]
    public void TheProbeLeavesTheSourceModuleIntact()
    {
        using var source = Embedding(10, 4, max_norm: 1.0);
        using Tensor before = source.weight!.detach().clone();
        Assert.Throws<NotSupportedException>(() => _ = new QEmbedding(source, QType.QInt8));
        Assert.That(source.weight!.shape, Is.EqualTo(new long[] { 10, 4 }));
        Assert.That(Reference.BitEqual(source.weight, before), Is.True);
        using Tensor y = source.forward(tensor(new long[] { 1 }));
        Assert.That(y.shape, Is.EqualTo(new long[] { 1, 4 }));
    }

    [Test]
    public void AQTypeIsRequired()
    {
        using var source = Embedding(10, 4);
        var error = Assert.Throws<ArgumentException>(() => _ = new QEmbedding(source, null, path: "emb"))!;
        Assert.That(error.Message, Does.Contain("'emb'").And.Contain("weights qtype"));
    }

    [Test]
    public void LoadingATableOfAnotherShapeIsRefused()
    {
        using var source = Embedding(10, 4);
        using var embedding = new QEmbedding(source, QType.QInt8, path: "emb");
        using var table = randn(11, 4);
        using var weight = WeightQuantizer.Quantize(table, QType.QInt8);
        var error = Assert.Throws<ArgumentException>(() => embedding.LoadQuantizedWeight(weight))!;
        Assert.That(error.Message, Does.Contain("QEmbedding 'emb' (10 x 4)").And.Contain("[11, 4]"));
    }
}
