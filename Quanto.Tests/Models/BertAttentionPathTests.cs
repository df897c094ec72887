using NUnit.Framework;
using Quanto.Models.Bert;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

/// <summary>BERT's attention on a batch large enough for libtorch's fused kernel (FusedAttention: batch x heads x
/// seq x seq >= 65,536), padded rows included, against the float64 reference equations.</summary>
public sealed class BertAttentionPathTests : TempFolderTests
{
    [Test]
    public void FusedAttentionOnAPaddedBatchEqualsTheReference()
    {
        Dictionary<string, Tensor> weights = TinyBert.Weights();
        HfFiles.Write(Folder, TinyBert.Config(), weights);
        using Bert model = Bert.FromHuggingFace(Folder);
        const int batch = 48, length = TinyBert.Positions;
        Assert.That((long)batch * TinyBert.Heads * length * length, Is.GreaterThanOrEqualTo(1 << 16));
        var g = new Generator(11);
        Tensor ids = randint(4, TinyBert.Vocab, [batch, length], generator: g, dtype: ScalarType.Int64);
        // Row i keeps its first length - (i % 7) tokens: every row but the 0th, 7th, ... is padded.
        Tensor mask = arange(length, dtype: ScalarType.Int64).unsqueeze(0)
            .lt(tensor(Enumerable.Range(0, batch).Select(i => (long)(length - i % 7)).ToArray()).unsqueeze(1))
            .to(ScalarType.Int64);
        Tensor types = zeros_like(ids);
        using var noGrad = no_grad();

        using Tensor expected = TinyBert.Reference(weights, ids, mask, types);
        using Tensor actual = model.forward(ids, mask, types);

        // Padded positions' own states are not compared (they are never read by the pooling).
        Tensor kept = mask.unsqueeze(-1).to(ScalarType.Float64);
        double error = ((actual.to(ScalarType.Float64) - expected) * kept).abs().max().item<double>();
        Assert.That(error, Is.LessThan(2e-5));
    }
}
