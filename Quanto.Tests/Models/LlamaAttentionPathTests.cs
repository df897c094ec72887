using System.Text.Json.Nodes;
using NUnit.Framework;
using Quanto.Models.HuggingFace;
using Quanto.Models.Llama;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

/// <summary>
/// The decode path's pieces against the float64 reference equations (<see cref="TinyLlama.Reference"/>): attention
/// with queries grouped per key/value head and its mask laid out to match (plain and fused), the cached rotary table (also
/// when it grows mid-sequence), batches, and prefill in chunks that continue a cache (a mask offset by the cached
/// positions).
/// </summary>
public sealed class LlamaAttentionPathTests : TempFolderTests
{
    // Small chunks take the plain matmul/softmax path; the large ones libtorch's fused kernel (FusedAttention).
    [TestCase(null, new long[] { 4, 3, 1, 1, 1, 1 })]
    [TestCase(3L, new long[] { 4, 3, 1, 1, 1, 1 })]
    [TestCase(null, new long[] { 100, 90, 1, 1 })]
    [TestCase(5L, new long[] { 100, 90, 1, 1 })]
    public void ChunkedPrefillOfABatchEqualsTheReference(long? window, long[] chunks)
    {
        JsonObject config = TinyLlama.Config(window is null ? "llama" : "mistral", window: window);
        config["max_position_embeddings"] = 600;
        Dictionary<string, Tensor> weights = TinyLlama.Weights();
        HfFiles.Write(Folder, config, weights);
        using Llama model = Llama.FromHuggingFace(Folder);
        using var noGrad = no_grad();
        long length = chunks.Sum();
        Tensor ids = cat([TinyLlama.Prompt(length, seed: 5), TinyLlama.Prompt(length, seed: 6)], 0);
        using Tensor expected = TinyLlama.Reference(weights, config, ids);
        using KvCache cache = model.NewCache(capacity: 2);

        // The first chunk from position 0, the next continuing the cache (each sees every position before it).
        long start = 0;
        foreach (long count in chunks)
        {
            using Tensor logits = model.forward(ids.narrow(1, start, count), cache);
            Assert.That(MaxAbs(logits, expected.narrow(1, start, count)), Is.LessThan(1e-4),
                $"positions {start}..{start + count - 1}");
            start += count;
        }
        Assert.That(cache.Length, Is.EqualTo(length));
    }

    [Test]
    public void DecodingPastTheFirstRotaryTableEqualsTheReference()
    {
        // max_position_embeddings 600: the table starts at 256 positions and grows twice on the way to 300.
        JsonObject config = TinyLlama.Config();
        config["max_position_embeddings"] = 600;
        Dictionary<string, Tensor> weights = TinyLlama.Weights();
        HfFiles.Write(Folder, config, weights);
        using Llama model = Llama.FromHuggingFace(Folder);
        using var noGrad = no_grad();
        Tensor ids = TinyLlama.Prompt(300);
        using Tensor expected = TinyLlama.Reference(weights, config, ids);
        using KvCache cache = model.NewCache(capacity: 16);

        using Tensor prefill = model.forward(ids.narrow(1, 0, 250), cache);
        Assert.That(MaxAbs(prefill, expected.narrow(1, 0, 250)), Is.LessThan(1e-4));
        for (long t = 250; t < 260; t++)
        {
            using Tensor step = model.forward(ids.narrow(1, t, 1), cache);
            Assert.That(MaxAbs(step, expected.narrow(1, t, 1)), Is.LessThan(1e-4), $"position {t}");
        }
        using Tensor rest = model.forward(ids.narrow(1, 260, 40), cache);
        Assert.That(MaxAbs(rest, expected.narrow(1, 260, 40)), Is.LessThan(1e-4));
    }

    [Test]
    public void BFloat16ModelFollowsTheReferenceThroughTheCache()
    {
        // The mask and the rotary table are made in the model's dtype; the fused attention accumulates in float32.
        JsonObject config = TinyLlama.Config("mistral", window: 4L);
        Dictionary<string, Tensor> weights = TinyLlama.Weights();
        HfFiles.Write(Folder, config, weights);
        using Llama model = Llama.FromHuggingFace(Folder, new LoadOptions { DType = ScalarType.BFloat16 });
        using var noGrad = no_grad();
        Tensor ids = TinyLlama.Prompt(10);
        using Tensor expected = TinyLlama.Reference(weights, config, ids);
        using KvCache cache = model.NewCache();

        var steps = new List<Tensor> { model.forward(ids.narrow(1, 0, 6), cache) };
        for (long t = 6; t < 10; t++) steps.Add(model.forward(ids.narrow(1, t, 1), cache));
        using Tensor actual = cat(steps, 1);
        Assert.That(actual.dtype, Is.EqualTo(ScalarType.BFloat16));
        // bf16 keeps 8 significant bits: compare to the scale of the logits, not absolutely.
        double scale = expected.abs().max().item<double>();
        Assert.That(MaxAbs(actual, expected) / scale, Is.LessThan(0.05));
        foreach (Tensor step in steps) step.Dispose();
    }

    private static double MaxAbs(Tensor a, Tensor b) =>
        (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();
}
