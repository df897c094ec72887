using System.Text.Json.Nodes;
using NUnit.Framework;
using Quanto.Models.HuggingFace;
using Quanto.Models.Llama;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

/// <summary>
/// The decode path's pieces against the float64 reference equations (<see cref="TinyLlama.Reference"/>): the fused
/// attention with queries grouped per key/value head and its mask laid out to match, the cached rotary table (also
/// when it grows mid-sequence), batches, and prefill in chunks that continue a cache (a mask offset by the cached
/// positions).
/// </summary>
public sealed class LlamaAttentionPathTests : TempFolderTests
{
    [TestCase(null)]
    [TestCase(3L)]
    public void ChunkedPrefillOfABatchEqualsTheReference(long? window)
    {
        JsonObject config = TinyLlama.Config(window is null ? "llama" : "mistral", window: window);
        Dictionary<string, Tensor> weights = TinyLlama.Weights();
        HfFiles.Write(Folder, config, weights);
        using Llama model = Llama.FromHuggingFace(Folder);
        using var noGrad = no_grad();
        Tensor ids = cat([TinyLlama.Prompt(11, seed: 5), TinyLlama.Prompt(11, seed: 6)], 0);
        using Tensor expected = TinyLlama.Reference(weights, config, ids);
        using KvCache cache = model.NewCache(capacity: 2);

        // 4 positions from 0, then 3 continuing the cache (each sees the 4 before it), then one at a time.
        long[] chunks = [4, 3, 1, 1, 1, 1];
        long start = 0;
        foreach (long count in chunks)
        {
            using Tensor logits = model.forward(ids.narrow(1, start, count), cache);
            Assert.That(MaxAbs(logits, expected.narrow(1, start, count)), Is.LessThan(1e-4),
                $"positions {start}..{start + count - 1}");
            start += count;
        }
        Assert.That(cache.Length, Is.EqualTo(11));
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
