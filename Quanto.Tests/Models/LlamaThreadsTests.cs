using NUnit.Framework;
using Quanto.Models.Llama;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

/// <summary>LlamaModel runs its decoder layers with one libtorch thread for decode steps when their Linears are
/// quantized (they run on Quanto's kernel pool) and with libtorch's setting otherwise; the count is put back after
/// every call, and the outputs still follow the reference equations.</summary>
public sealed class LlamaThreadsTests : TwoTorchThreadsTests
{
    [Test]
    public void QuantizedDecodeStepsRunOnOneThreadFloatLayersAndLongPromptsKeepLibtorchsCount()
    {
        HfFiles.Write(Folder, TinyLlama.Config(), TinyLlama.Weights());
        using Llama generated = Llama.FromHuggingFace(Folder);
        using Llama eager = Llama.FromHuggingFace(Folder);
        using Tensor step = zeros(1, 1, dtype: ScalarType.Int64);
        using Tensor prompt = zeros(1, TorchThreads.SmallInputTokens, dtype: ScalarType.Int64);
        Assert.That(Decoder(generated).ThreadsForLayers(step), Is.Null, "float Linears: MKL uses libtorch's threads");

        generated.Quantize(QType.QInt4);
        Quantizer.Quantize(eager, QType.QInt8, exclude: ["lm_head"]);

        foreach (Llama quantized in new[] { generated, eager })
        {
            Assert.That(Decoder(quantized).ThreadsForLayers(step), Is.EqualTo(1), "a decode step");
            Assert.That(Decoder(quantized).ThreadsForLayers(prompt), Is.Null, "a long prompt: libtorch's setting");
        }
    }

    [Test]
    public void AQuantizedDecodeFollowsTheReferenceAndLeavesTheCount()
    {
        var config = TinyLlama.Config();
        Dictionary<string, Tensor> weights = TinyLlama.Weights();
        HfFiles.Write(Folder, config, weights);
        using Llama model = Llama.FromHuggingFace(Folder);
        model.Quantize(QType.QInt8);
        Tensor ids = TinyLlama.Prompt(8);
        using var noGrad = no_grad();
        using Tensor expected = TinyLlama.Reference(weights, config, ids);
        using KvCache cache = model.NewCache();

        using Tensor prefill = model.forward(ids.narrow(1, 0, 5), cache);
        Assert.That(get_num_threads(), Is.EqualTo(2));
        var steps = new List<Tensor> { prefill };
        for (long t = 5; t < 8; t++) steps.Add(model.forward(ids.narrow(1, t, 1), cache));
        Assert.That(get_num_threads(), Is.EqualTo(2));

        // int8 per-channel weights on 32-wide layers: logits within a few percent of the float equations' (2.2%
        // measured), and the cached steps equal a full recomputation of the quantized model.
        using Tensor actual = cat(steps, 1);
        double relative = (actual.to(ScalarType.Float64) - expected).norm().item<double>() /
                          expected.norm().item<double>();
        Assert.That(relative, Is.LessThan(0.05));
        using Tensor full = model.forward(ids, null);
        Assert.That((actual - full).abs().max().item<float>(), Is.LessThan(1e-4));
        Assert.Throws<ArgumentException>(() => model.forward(ids.add(TinyLlama.Vocab), null));
        Assert.That(get_num_threads(), Is.EqualTo(2));
    }

    private static LlamaModel Decoder(Llama model) =>
        (LlamaModel)model.named_children().Single(c => c.name == "model").module;
}
