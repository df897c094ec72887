using NUnit.Framework;
using Quanto.Kernels.Cpu;
using Quanto.Kernels.Cpu.Float;
using Quanto.Models.Generation;
using Quanto.Models.Llama;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

/// <summary>
/// Llama's float32 lm_head on Quanto's float GEMV at decode steps (the size threshold lowered to the tiny model's
/// 8 KB head): logits close to libtorch's, greedy generation token for token the same, untied and tied, float and
/// with quantized decoder layers; a quantized lm_head keeps its quantized path. And generation's last-position
/// logits equal the last position of forward's.
/// </summary>
[NonParallelizable]
public sealed class LlamaFloatHeadTests : TempFolderTests
{
    private long _minBytes;
    private bool _enabled;

    [SetUp]
    public void LowerTheThreshold()
    {
        _minBytes = FloatGemv.MinWeightBytes;
        _enabled = FloatGemv.Enabled;
        FloatGemv.MinWeightBytes = 0;
    }

    [TearDown]
    public void PutTheThresholdBack()
    {
        FloatGemv.MinWeightBytes = _minBytes;
        FloatGemv.Enabled = _enabled;
    }

    private Llama Model(bool tied)
    {
        HfFiles.Write(Folder, TinyLlama.Config(tied: tied), TinyLlama.Weights(tied: tied));
        return Llama.FromHuggingFace(Folder);
    }

    private static (Tensor Logits, IReadOnlyList<long> Tokens) Run(Llama model, bool kernel)
    {
        FloatGemv.Enabled = kernel;
        using var noGrad = no_grad();
        Tensor ids = TinyLlama.Prompt(6);
        using KvCache cache = model.NewCache();
        using Tensor prefill = model.forward(ids.narrow(1, 0, 5), cache);
        Tensor step = model.forward(ids.narrow(1, 5, 1), cache);
        var options = new GenerationOptions { MaxNewTokens = 12, StopTokens = [] };
        return (step, model.Generate([5, 9, 17, 33], options).Tokens);
    }

    private static void AssertSame(Llama model)
    {
        if (FloatGemv.BestPath == CpuKernelPath.Scalar) Assert.Ignore("No Vector256/Vector512 on this CPU.");
        (Tensor withKernel, IReadOnlyList<long> kernelTokens) = Run(model, kernel: true);
        (Tensor without, IReadOnlyList<long> libtorchTokens) = Run(model, kernel: false);
        Assert.That(withKernel.shape, Is.EqualTo(new long[] { 1, 1, TinyLlama.Vocab }));
        float scale = without.abs().max().item<float>();
        Assert.That((withKernel - without).abs().max().item<float>(), Is.LessThan(1e-5f * scale));
        Assert.That(kernelTokens, Is.EqualTo(libtorchTokens));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void FloatModel_TheKernelGivesLibtorchsLogitsAndTokens(bool tied)
    {
        using Llama model = Model(tied);
        AssertSame(model);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void QuantizedLayersFloatHead_TheKernelGivesLibtorchsLogitsAndTokens(bool tied)
    {
        using Llama generated = Model(tied);
        generated.Quantize(QType.QInt4, exclude: ["lm_head"]);
        AssertSame(generated);
        using Llama eager = Model(tied);
        Quantizer.Quantize(eager, QType.QInt8, exclude: ["lm_head"]);
        AssertSame(eager);
    }

    [Test]
    public void AQuantizedHeadKeepsItsQuantizedPath()
    {
        using Llama model = Model(tied: false);
        model.Quantize(QType.QInt8, exclude: []); // lm_head too; Freeze empties its float weight
        (Tensor withKernel, IReadOnlyList<long> kernelTokens) = Run(model, kernel: true);
        (Tensor without, IReadOnlyList<long> libtorchTokens) = Run(model, kernel: false);
        Assert.That(withKernel.equal(without).all().item<bool>(), Is.True, "the same quantized op either way");
        Assert.That(kernelTokens, Is.EqualTo(libtorchTokens));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void LastLogitsEqualTheLastPositionOfForward(bool quantized)
    {
        using Llama model = Model(tied: false);
        if (quantized) model.Quantize(QType.QInt8, exclude: ["lm_head"]);
        using var noGrad = no_grad();
        Tensor ids = TinyLlama.Prompt(7);
        using KvCache a = model.NewCache(), b = model.NewCache();
        using Tensor all = model.forward(ids, a);
        using Tensor last = model.LastLogits(ids, b);
        Assert.That(last.shape, Is.EqualTo(new long[] { 1, 1, TinyLlama.Vocab }));
        Assert.That((last - all.narrow(1, 6, 1)).abs().max().item<float>(), Is.LessThan(1e-5f));
        Assert.That(b.Length, Is.EqualTo(a.Length), "the cache holds every position");
        using Tensor next = TinyLlama.Prompt(1, seed: 8);
        using Tensor stepAll = model.forward(next, a);
        using Tensor stepLast = model.LastLogits(next, b);
        Assert.That((stepLast - stepAll).abs().max().item<float>(), Is.LessThan(1e-5f));
    }
}
