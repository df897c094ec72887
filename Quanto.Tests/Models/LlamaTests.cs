using System.Text.Json.Nodes;
using NUnit.Framework;
using Quanto.Models.Llama;
using Quanto.Serialization;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

public sealed class LlamaTests : TempFolderTests
{
    private static IEnumerable<TestCaseData> Families()
    {
        yield return new TestCaseData("llama", false, null, null, false).SetName("Llama GQA untied");
        yield return new TestCaseData("llama", true, new JsonObject
        {
            ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0,
            ["original_max_position_embeddings"] = 16.0,
        }, null, false).SetName("Llama3 rope scaling, tied embeddings");
        yield return new TestCaseData("llama", false, new JsonObject { ["type"] = "linear", ["factor"] = 2.0 }, null,
            false).SetName("Linear rope scaling");
        yield return new TestCaseData("qwen2", true, null, null, true).SetName("Qwen2 q/k/v biases");
        yield return new TestCaseData("mistral", false, null, 4L, false).SetName("Mistral sliding window 4");
    }

    [TestCaseSource(nameof(Families))]
    public void ForwardEqualsTheReferenceEquations(string type, bool tied, JsonObject? rope, long? window, bool bias)
    {
        JsonObject config = TinyLlama.Config(type, tied, rope, window);
        Dictionary<string, Tensor> weights = TinyLlama.Weights(tied, bias);
        HfFiles.Write(Folder, config, weights);
        using Llama model = Llama.FromHuggingFace(Folder);
        Tensor ids = TinyLlama.Prompt();

        using Tensor expected = TinyLlama.Reference(weights, config, ids);
        using Tensor actual = model.forward(ids, null);
        Assert.That(actual.shape, Is.EqualTo(new long[] { 1, 9, TinyLlama.Vocab }));
        Assert.That(MaxAbs(actual, expected), Is.LessThan(1e-4));
    }

    [TestCaseSource(nameof(Families))]
    public void CachedDecodeEqualsFullRecomputationTokenByToken(string type, bool tied, JsonObject? rope,
        long? window, bool bias)
    {
        JsonObject config = TinyLlama.Config(type, tied, rope, window);
        HfFiles.Write(Folder, config, TinyLlama.Weights(tied, bias));
        using Llama model = Llama.FromHuggingFace(Folder);
        Tensor ids = TinyLlama.Prompt(12);
        using var noGrad = no_grad();
        using KvCache cache = model.NewCache(capacity: 4); // small: the buffers grow while decoding

        using Tensor full = model.forward(ids, null);
        using Tensor prefill = model.forward(ids.narrow(1, 0, 5), cache);
        Assert.That(MaxAbs(prefill, full.narrow(1, 0, 5)), Is.LessThan(5e-5));
        for (long t = 5; t < 12; t++)
        {
            using Tensor step = model.forward(ids.narrow(1, t, 1), cache);
            Assert.That(MaxAbs(step, full.narrow(1, t, 1)), Is.LessThan(5e-5), $"position {t}");
        }
        Assert.That(cache.Length, Is.EqualTo(12));
    }

    [Test]
    public void TiedCheckpointSharesTheEmbedding()
    {
        HfFiles.Write(Folder, TinyLlama.Config(tied: true), TinyLlama.Weights(tied: true));
        using Llama model = Llama.FromHuggingFace(Folder);
        Dictionary<string, Tensor> state = model.state_dict();
        using (no_grad()) state["model.embed_tokens.weight"].mul_(2); // one tensor: the head sees the change
        Assert.That(state["lm_head.weight"].eq(state["model.embed_tokens.weight"]).all().item<bool>(), Is.True);
        using Tensor doubled = TinyLlama.Weights(tied: true)["model.embed_tokens.weight"].mul(2);
        Assert.That(state["lm_head.weight"].eq(doubled).all().item<bool>(), Is.True);
    }

    [TestCase("gpt2", "model_type is 'gpt2'; Llama loads llama, mistral, qwen2")]
    [TestCase("llama-yarn", "rope_scaling type 'yarn' is not supported")]
    public void UnsupportedConfigsAreRefused(string variant, string message)
    {
        JsonObject config = variant == "gpt2"
            ? TinyLlama.Config("gpt2")
            : TinyLlama.Config(ropeScaling: new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0 });
        HfFiles.Write(Folder, config, TinyLlama.Weights());
        var e = Assert.Throws<QuantoFormatException>(() => Llama.FromHuggingFace(Folder))!;
        Assert.That(e.Message, Does.Contain("config.json"));
        Assert.That(e.Message, Does.Contain(message));
    }

    [Test]
    public void WrongShapeNamesFileKeyAndShapes()
    {
        Dictionary<string, Tensor> weights = TinyLlama.Weights();
        weights["model.layers.1.self_attn.k_proj.weight"] = zeros(32, 32); // multi-head shape in a GQA config
        HfFiles.Write(Folder, TinyLlama.Config(), weights, shardBytes: 8192);
        var e = Assert.Throws<QuantoFormatException>(() => Llama.FromHuggingFace(Folder))!;
        Assert.That(e.Message, Does.Match(
            @"shape mismatch for 'model\.layers\.1\.self_attn\.k_proj\.weight' in model-\d{5}-of-\d{5}\.safetensors: " +
            @"the file holds \[32, 32\], the model \(from config\.json\) expects \[16, 32\]"));
    }

    [Test]
    public void InputsOutsideTheModelAreRefused()
    {
        HfFiles.Write(Folder, TinyLlama.Config(), TinyLlama.Weights());
        using Llama model = Llama.FromHuggingFace(Folder);
        Assert.Throws<ArgumentException>(() => model.forward(tensor(new long[,] { { 1, 64 } }), null));
        Assert.Throws<ArgumentException>(() => model.forward(zeros(1, 65, dtype: ScalarType.Int64), null));
        Assert.Throws<ArgumentException>(() => model.forward(zeros(1, 3), null));
    }

    private static double MaxAbs(Tensor a, Tensor b) =>
        (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();
}
