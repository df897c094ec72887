using System.Text;
using System.Text.RegularExpressions;
using NUnit.Framework;
using Quanto.Models.Bert;
using Quanto.Models.Llama;
using Quanto.Nn;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

/// <summary>
/// Llama and Bert are [Quantize] classes: their own Quantize runs the code the generator wrote for them (the twins,
/// ForwardQuantized), and forward, Generate's KV-cache passes, SentenceEmbeddings and SavePretrained / FromPretrained
/// go through it. The reference is the eager path on the same class with the same checkpoint
/// (<see cref="Quantizer.Quantize"/> swapping the layers in place, then <see cref="Quantizer.Freeze"/>), which
/// optimum-quanto's quantize mirrors: the same modules, and the same logits, embeddings and saved bytes bit for bit.
/// </summary>
public sealed class GeneratedPathTests : TempFolderTests
{
    private static IEnumerable<TestCaseData> Configurations()
    {
        yield return new TestCaseData(QType.QInt8, null).SetName("{m}(w8)");
        yield return new TestCaseData(QType.QInt4, null).SetName("{m}(w4)");
        yield return new TestCaseData(QType.QInt8, QType.QInt8).SetName("{m}(w8a8)");
    }

    [TestCaseSource(nameof(Configurations))]
    public void Llama_generated_path_equals_the_eager_path(QType weights, QType? activations)
    {
        string source = Checkpoint(TinyLlama.Config(), TinyLlama.Weights());
        using Llama generated = Llama.FromHuggingFace(source);
        using Llama eager = Llama.FromHuggingFace(source);
        Tensor ids = TinyLlama.Prompt(12);
        using var noGrad = no_grad();

        QuantizationReport report = generated.Quantize(weights, activations);
        QuantizationReport expected = Quantizer.Quantize(eager, weights, activations, exclude: [Llama.LmHead]);
        Quantizer.Freeze(eager);
        if (activations is not null)
        {
            using (new Calibration(momentum: 0.9)) generated.forward(ids, null);
            using (new Calibration(momentum: 0.9)) eager.forward(ids, null);
        }

        Assert.That(generated.IsQuantized, Is.True, "the generated lifecycle");
        Assert.That(eager.IsQuantized, Is.False, "the eager path swapped layers instead");
        Assert.That(report.Quantized.Select(q => q.Path), Is.EqualTo(expected.Quantized.Select(q => q.Path)));
        Assert.That(report.Quantized.Select(q => q.Path), Does.Contain("model.layers.0.self_attn.q_proj")
            .And.None.EqualTo(Llama.LmHead));
        AssertSameModules(generated, eager);
        AssertEqual(generated.forward(ids, null), eager.forward(ids, null), "full sequence");
        AssertSameDecode(generated, eager, ids, prefill: 8);

        string savedGenerated = Path.Combine(Folder, "generated"), savedEager = Path.Combine(Folder, "eager");
        generated.SavePretrained(savedGenerated);
        eager.SavePretrained(savedEager);
        AssertSameFiles(savedGenerated, savedEager);
        using Llama reloaded = Llama.FromPretrained(savedGenerated);
        Assert.That(reloaded.IsQuantized, Is.True, "FromPretrained loads through the generated lifecycle");
        AssertSameModules(reloaded, eager);
        AssertEqual(reloaded.forward(ids, null), eager.forward(ids, null), "after SavePretrained -> FromPretrained");
        AssertSameDecode(reloaded, eager, ids, prefill: 5);
    }

    [TestCase(QType.QInt8)]
    [TestCase(QType.QInt4)]
    public void A_tied_lm_head_is_includable_and_equals_the_eager_path(QType weights)
    {
        string source = Checkpoint(TinyLlama.Config(tied: true), TinyLlama.Weights(tied: true));
        using Llama generated = Llama.FromHuggingFace(source);
        using Llama eager = Llama.FromHuggingFace(source);
        Tensor ids = TinyLlama.Prompt(10);
        using var noGrad = no_grad();

        QuantizationReport report = generated.Quantize(weights, exclude: []);
        Quantizer.Quantize(eager, weights);
        Quantizer.Freeze(eager);

        Assert.That(report.Quantized.Select(q => q.Path), Does.Contain(Llama.LmHead));
        AssertSameModules(generated, eager);
        AssertEqual(generated.forward(ids, null), eager.forward(ids, null), "quantized tied head");
        Assert.That(generated.state_dict()["model.embed_tokens.weight"].shape,
            Is.EqualTo(new long[] { TinyLlama.Vocab, TinyLlama.Hidden }), "the embedding keeps the shared weight");
        string saved = Path.Combine(Folder, "saved");
        generated.SavePretrained(saved);
        using Llama reloaded = Llama.FromPretrained(saved);
        AssertEqual(reloaded.forward(ids, null), eager.forward(ids, null), "reloaded");
    }

    [TestCaseSource(nameof(Configurations))]
    public void Bert_generated_path_equals_the_eager_path(QType weights, QType? activations)
    {
        string source = Checkpoint(TinyBert.Config(), TinyBert.Weights());
        using Bert generated = Bert.FromHuggingFace(source);
        using Bert eager = Bert.FromHuggingFace(source);
        (Tensor ids, Tensor mask, Tensor types) = TinyBert.Batch();
        using var noGrad = no_grad();

        generated.Quantize(weights, activations);
        Quantizer.Quantize(eager, weights, activations);
        Quantizer.Freeze(eager);
        if (activations is not null)
        {
            using (new Calibration(momentum: 0.9)) generated.forward(ids, mask, types);
            using (new Calibration(momentum: 0.9)) eager.forward(ids, mask, types);
        }

        Assert.That(generated.IsQuantized && !eager.IsQuantized, Is.True);
        AssertSameModules(generated, eager);
        string[] norms = Quantizer.QuantizedModules(generated).OfType<QLayerNorm>().Select(m => m.Path).ToArray();
        if (activations is null) Assert.That(norms, Is.Empty, "no LayerNorm twin without quantized activations");
        else Assert.That(norms, Has.Length.EqualTo(1 + 2 * TinyBert.Layers).And.Contain("embeddings.LayerNorm"));
        AssertEqual(generated.forward(ids, mask, types), eager.forward(ids, mask, types), "last hidden state");
        AssertEqual(generated.SentenceEmbeddings(ids, mask), eager.SentenceEmbeddings(ids, mask), "embeddings");

        string savedGenerated = Path.Combine(Folder, "generated"), savedEager = Path.Combine(Folder, "eager");
        generated.SavePretrained(savedGenerated);
        eager.SavePretrained(savedEager);
        AssertSameFiles(savedGenerated, savedEager);
        using Bert reloaded = Bert.FromPretrained(savedGenerated);
        Assert.That(reloaded.IsQuantized, Is.True);
        AssertEqual(reloaded.SentenceEmbeddings(ids, mask), eager.SentenceEmbeddings(ids, mask), "reloaded");
    }

    /// <summary>A Hugging Face folder with the tiny model's config and weights.</summary>
    private string Checkpoint(System.Text.Json.Nodes.JsonObject config, Dictionary<string, Tensor> weights)
    {
        string source = Path.Combine(Folder, "float");
        HfFiles.Write(source, config, weights);
        return source;
    }

    /// <summary>Prefill then token-by-token decode through each model's own KV cache.</summary>
    private static void AssertSameDecode(Llama generated, Llama eager, Tensor ids, long prefill)
    {
        using KvCache first = generated.NewCache(32), second = eager.NewCache(32);
        AssertEqual(generated.forward(ids[.., ..(int)prefill], first), eager.forward(ids[.., ..(int)prefill], second),
            "prefill");
        for (long i = prefill; i < ids.shape[1]; i++)
        {
            Tensor token = ids[.., (int)i..(int)(i + 1)];
            AssertEqual(generated.forward(token, first), eager.forward(token, second), $"decode step {i}");
        }
    }

    private static void AssertSameModules(nn.Module generated, nn.Module eager) =>
        Assert.That(Quantizer.QuantizedModules(generated).Select(m => m.Describe()),
            Is.EquivalentTo(Quantizer.QuantizedModules(eager).Select(m => m.Describe())));

    private static void AssertEqual(Tensor actual, Tensor expected, string what)
    {
        Assert.That(actual.shape, Is.EqualTo(expected.shape), what);
        Assert.That(actual.eq(expected).all().item<bool>(), Is.True, $"{what}: bit for bit");
    }

    /// <summary>The folders hold the same files with the same bytes, but for each save's own generation id (a random
    /// id in the safetensors metadata, which its checksum covers).</summary>
    private static void AssertSameFiles(string actual, string expected)
    {
        string[] Names(string folder) => Directory.GetFiles(folder).Select(Path.GetFileName)
            .Where(n => !n!.StartsWith('.')).Order().ToArray()!;
        Assert.That(Names(actual), Is.EqualTo(Names(expected)));
        foreach (string name in Names(expected))
        {
            byte[] a = File.ReadAllBytes(Path.Combine(actual, name)), e = File.ReadAllBytes(Path.Combine(expected, name));
            if (name.EndsWith(".safetensors", StringComparison.Ordinal))
            {
                (a, e) = (WithoutGeneration(a), WithoutGeneration(e));
            }
            Assert.That(a, Is.EqualTo(e), name);
        }
    }

    private static byte[] WithoutGeneration(byte[] file)
    {
        int length = (int)BitConverter.ToUInt64(file, 0);
        string header = Encoding.UTF8.GetString(file, 8, length);
        header = Regex.Replace(header, "\\\\\"generation\\\\\":\\\\\"[0-9a-f]+\\\\\"", "generation");
        header = Regex.Replace(header, "\\\\\"__metadata__\\\\\":\\\\\"[0-9a-f]+\\\\\"", "checksum");
        Assert.That(header, Does.Contain("generation").And.Contain("checksum"), "the metadata fields replaced");
        return [.. Encoding.UTF8.GetBytes(header), .. file.AsSpan(8 + length)];
    }
}
