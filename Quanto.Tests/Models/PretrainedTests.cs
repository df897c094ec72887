using System.Text.Json.Nodes;
using NUnit.Framework;
using Quanto.Models.Bert;
using Quanto.Models.Llama;
using Quanto.Serialization;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

/// <summary>optimum-quanto's workflow: quantize -> save_pretrained -> from_pretrained.</summary>
public sealed class PretrainedTests : TempFolderTests
{
    private string Source => Path.Combine(Folder, "float");

    private string Saved => Path.Combine(Folder, "quantized");

    private static IEnumerable<TestCaseData> Configurations()
    {
        yield return new TestCaseData(QType.QInt8, null).SetName("w8");
        yield return new TestCaseData(QType.QInt4, null).SetName("w4");
        yield return new TestCaseData(QType.QInt2, null).SetName("w2");
        yield return new TestCaseData(QType.QFloat8E4M3Fn, null).SetName("w-fp8");
        yield return new TestCaseData(QType.QInt8, QType.QInt8).SetName("w8a8 calibrated");
    }

    [TestCaseSource(nameof(Configurations))]
    public void LlamaRoundTripGivesIdenticalLogits(QType weights, QType? activations)
    {
        HfFiles.Write(Source, TinyLlama.Config(), TinyLlama.Weights());
        using Llama model = Llama.FromHuggingFace(Source);
        Tensor ids = TinyLlama.Prompt(12);
        using var noGrad = no_grad();
        using Tensor floatLogits = model.forward(ids, null);

        QuantizationReport report = model.Quantize(weights, activations);
        if (activations is not null)
        {
            using (new Calibration(momentum: 0.9)) model.forward(ids, null);
        }
        using Tensor expected = model.forward(ids, null);
        model.SavePretrained(Saved);
        using Llama reloaded = Llama.FromPretrained(Saved);
        using Tensor actual = reloaded.forward(ids, null);

        Assert.That(report.Quantized, Has.Count.EqualTo(TinyLlama.Layers * 7), "every Linear but lm_head");
        Assert.That(report.Quantized.Select(q => q.Path), Has.None.EqualTo("lm_head"));
        Assert.That(actual.eq(expected).all().item<bool>(), Is.True, "identical logits after the round trip");
        // A sanity bound only (per-channel 2/4-bit codes on 32-wide random layers are coarse): the point is the
        // round trip. 8-bit weights stay close to the float model.
        if (weights.Info().Bits == 8) Assert.That(Reference.CosineError(expected, floatLogits), Is.LessThan(0.01));
        Assert.That(Quanto.Quantizer.QuantizedModules(reloaded).All(m => m.IsFrozen && m.FloatWeight is null), Is.True);
        // Hidden files aside (the save's folder lock, .quanto.lock), the folder optimum-quanto's save_pretrained writes.
        Assert.That(Directory.GetFiles(Saved).Select(Path.GetFileName).Where(n => !n!.StartsWith('.')).Order(),
            Is.EqualTo(new[] { "config.json", "model.safetensors", "quanto_qmap.json" }));
        JsonObject map = JsonNode.Parse(File.ReadAllText(Path.Combine(Saved, "quanto_qmap.json")))!.AsObject();
        Assert.That(map["model.layers.1.mlp.down_proj"]!["weights"]!.GetValue<string>(), Is.EqualTo(weights.QuantoName()));
        Assert.That(map.ContainsKey("lm_head"), Is.False);
        using StateDict file = Safetensors.Load(Path.Combine(Saved, "model.safetensors"));
        string dataKey = weights.Info().IsPacked ? "weight._data._data" : "weight._data";
        Assert.That(file.ContainsKey("model.layers.0.self_attn.q_proj." + dataKey), Is.True);
        Assert.That(file.ContainsKey("model.layers.0.self_attn.q_proj.weight"), Is.False);
        Assert.That(file.ContainsKey("lm_head.weight"), Is.True);
    }

    [Test]
    public void TiedFloatHeadIsNotWrittenAndReloadsTied()
    {
        HfFiles.Write(Source, TinyLlama.Config(tied: true), TinyLlama.Weights(tied: true));
        using Llama model = Llama.FromHuggingFace(Source);
        model.Quantize(QType.QInt4);
        Tensor ids = TinyLlama.Prompt();
        using var noGrad = no_grad();
        using Tensor expected = model.forward(ids, null);
        model.SavePretrained(Saved, maxShardBytes: 4096);
        using Llama reloaded = Llama.FromPretrained(Saved);

        using Tensor actual = reloaded.forward(ids, null);
        Assert.That(actual.eq(expected).all().item<bool>(), Is.True);
        Assert.That(File.Exists(Path.Combine(Saved, ShardedSafetensors.IndexFileName)), Is.True);
        using StateDict file = ShardedSafetensors.Load(Saved);
        Assert.That(file.ContainsKey("lm_head.weight"), Is.False, "transformers drops the tied duplicate");
        Dictionary<string, Tensor> state = reloaded.state_dict();
        using (no_grad()) state["model.embed_tokens.weight"].mul_(2);
        Assert.That(state["lm_head.weight"].eq(state["model.embed_tokens.weight"]).all().item<bool>(), Is.True);
    }

    [Test]
    public void QuantizedTiedHeadUntiesTheSavedConfig()
    {
        HfFiles.Write(Source, TinyLlama.Config(tied: true), TinyLlama.Weights(tied: true));
        using Llama model = Llama.FromHuggingFace(Source);
        model.Quantize(QType.QInt8, exclude: []);
        Tensor ids = TinyLlama.Prompt();
        using var noGrad = no_grad();
        using Tensor expected = model.forward(ids, null);
        model.SavePretrained(Saved);
        using Llama reloaded = Llama.FromPretrained(Saved);

        using Tensor actual = reloaded.forward(ids, null);
        Assert.That(actual.eq(expected).all().item<bool>(), Is.True);
        JsonNode config = JsonNode.Parse(File.ReadAllText(Path.Combine(Saved, "config.json")))!;
        Assert.That(config["tie_word_embeddings"]!.GetValue<bool>(), Is.False);
        Assert.That(reloaded.Config.TieWordEmbeddings, Is.False);
    }

    [Test]
    public void BertRoundTripGivesIdenticalEmbeddings()
    {
        HfFiles.Write(Source, TinyBert.Config(), TinyBert.Weights());
        using Bert model = Bert.FromHuggingFace(Source);
        (Tensor ids, Tensor mask, _) = TinyBert.Batch();
        model.Quantize(QType.QInt4);
        using Tensor expected = model.SentenceEmbeddings(ids, mask);
        model.SavePretrained(Saved);
        using Bert reloaded = Bert.FromPretrained(Saved);

        using Tensor actual = reloaded.SentenceEmbeddings(ids, mask);
        Assert.That(actual.eq(expected).all().item<bool>(), Is.True);
        Assert.That(reloaded.Config.HiddenSize, Is.EqualTo(TinyBert.Hidden));
    }

    [Test]
    public void FloatFolderIsNotAQuantizedOne()
    {
        HfFiles.Write(Source, TinyLlama.Config(), TinyLlama.Weights());
        var e = Assert.Throws<QuantoFormatException>(() => Llama.FromPretrained(Source))!;
        Assert.That(e.Message, Does.Contain("no quanto_qmap.json"));
        Assert.That(e.Message, Does.Contain("FromHuggingFace"));
    }

    [Test]
    public void SavedFileMissingAQuantizedTensorIsNamed()
    {
        HfFiles.Write(Source, TinyLlama.Config(), TinyLlama.Weights());
        using (Llama model = Llama.FromHuggingFace(Source))
        {
            model.Quantize(QType.QInt8);
            model.SavePretrained(Saved);
        }
        string weights = Path.Combine(Saved, "model.safetensors");
        Dictionary<string, Tensor> kept;
        using (StateDict file = Safetensors.Load(weights))
            kept = file.Where(p => p.Key != "model.layers.1.mlp.up_proj.weight._scale")
                .ToDictionary(p => p.Key, p => p.Value.clone());
        Safetensors.Save(weights, kept);
        var e = Assert.Throws<QuantoFormatException>(() => Llama.FromPretrained(Saved))!;
        Assert.That(e.Message, Does.Contain("model.safetensors"));
        Assert.That(e.Message, Does.Contain("'model.layers.1.mlp.up_proj.weight._scale'"));
    }
}
