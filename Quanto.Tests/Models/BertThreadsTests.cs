using NUnit.Framework;
using Quanto.Models.Bert;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

/// <summary>Bert.IntraOpThreads: the forward runs with libtorch's thread count set for the call (TorchThreads) and
/// put back afterwards, with the same outputs as the float64 reference equations, float and quantized.</summary>
public sealed class BertThreadsTests : TwoTorchThreadsTests
{
    [Test]
    public void TheScopeSetsTheCountAndPutsItBack()
    {
        using (new TorchThreads(1)) Assert.That(get_num_threads(), Is.EqualTo(1));
        Assert.That(get_num_threads(), Is.EqualTo(2));
        using (new TorchThreads(null)) Assert.That(get_num_threads(), Is.EqualTo(2));
        using (new TorchThreads(2)) Assert.That(get_num_threads(), Is.EqualTo(2));
        Assert.That(get_num_threads(), Is.EqualTo(2));
    }

    [TestCase(1)]
    [TestCase(null)]
    [TestCase(2)]
    public void ForwardEqualsTheReferenceAndLeavesTheCount(int? threads)
    {
        Dictionary<string, Tensor> weights = TinyBert.Weights();
        HfFiles.Write(Folder, TinyBert.Config(), weights);
        using Bert model = Bert.FromHuggingFace(Folder);
        Assert.That(model.IntraOpThreads, Is.Null, "the default");
        model.IntraOpThreads = threads;
        (Tensor ids, Tensor mask, Tensor types) = TinyBert.Batch();
        using var noGrad = no_grad();

        using Tensor expected = TinyBert.Reference(weights, ids, mask, types);
        using Tensor actual = model.forward(ids, mask, types);

        Assert.That(get_num_threads(), Is.EqualTo(2));
        Tensor kept = mask.unsqueeze(-1).to(ScalarType.Float64);
        double error = ((actual.to(ScalarType.Float64) - expected) * kept).abs().max().item<double>();
        Assert.That(error, Is.LessThan(2e-5));
    }

    [Test]
    public void AQuantizedForwardAndAFailingOneLeaveTheCount()
    {
        Dictionary<string, Tensor> weights = TinyBert.Weights();
        HfFiles.Write(Folder, TinyBert.Config(), weights);
        using Bert model = Bert.FromHuggingFace(Folder);
        (Tensor ids, Tensor mask, _) = TinyBert.Batch();
        using var noGrad = no_grad();
        using Tensor floatEmbeddings = model.SentenceEmbeddings(ids, mask);
        model.Quantize(QType.QInt8);

        using Tensor quantized = model.SentenceEmbeddings(ids, mask);

        Assert.That(get_num_threads(), Is.EqualTo(2));
        // int8 per-channel weights: each sentence's embedding stays close to the float one.
        double cosine = (quantized * floatEmbeddings).sum(1).min().item<float>();
        Assert.That(cosine, Is.GreaterThan(0.99));
        Assert.Throws<ArgumentException>(() => model.forward(ids.add(TinyBert.Vocab), mask, zeros_like(ids)));
        Assert.That(get_num_threads(), Is.EqualTo(2));
    }

    [Test]
    public void TheAutomaticCountIsOneForSmallInputsFloatOrQuantized()
    {
        HfFiles.Write(Folder, TinyBert.Config(), TinyBert.Weights());
        using Bert model = Bert.FromHuggingFace(Folder);
        using Bert eager = Bert.FromHuggingFace(Folder);
        using Tensor small = zeros(1, Bert.SmallInputTokens - 1, dtype: ScalarType.Int64);
        using Tensor large = zeros(8, Bert.SmallInputTokens / 8, dtype: ScalarType.Int64);
        Assert.That(model.ThreadsFor(small), Is.EqualTo(1));
        Assert.That(model.ThreadsFor(large), Is.Null, "a large input: libtorch's setting");
        model.IntraOpThreads = 2;
        Assert.That(model.ThreadsFor(small), Is.EqualTo(2), "an explicit count is kept");
        model.IntraOpThreads = null;
        model.Quantize(QType.QInt8);
        Quantizer.Quantize(eager, QType.QInt8);
        Quantizer.Freeze(eager);
        foreach (Bert quantized in new[] { model, eager })
        {
            Assert.That(quantized.ThreadsFor(small), Is.EqualTo(1));
            Assert.That(quantized.ThreadsFor(large), Is.Null, "large inputs share libtorch's ops, quantized too");
        }
    }

    [Test]
    public void ACountBelowOneIsRefused()
    {
        HfFiles.Write(Folder, TinyBert.Config(), TinyBert.Weights());
        using Bert model = Bert.FromHuggingFace(Folder);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.IntraOpThreads = 0);
    }
}
