using NUnit.Framework;
using Quanto.Models.Llama;
using Quanto.Quantization;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

/// <summary>Llama.TuneScales: the group scales of a quantized causal LM fitted to the float model's next-token
/// distributions, against a Kullback-Leibler divergence computed here in float64 from its definition.</summary>
public sealed class LlamaTuningTests : TempFolderTests
{
    private static Tensor[] Prompts() => [.. Enumerable.Range(0, 4).Select(i => TinyLlama.Prompt(16, seed: 5 + i))];

    /// <summary>mean over sequences and positions of sum_v p_v (log p_v - log q_v), p and q the softmax of the
    /// float and the model's logits.</summary>
    private static double Divergence(Llama model, Tensor[] ids, IReadOnlyList<Tensor> floatLogits)
    {
        using var noGrad = no_grad();
        double sum = 0;
        for (int i = 0; i < ids.Length; i++)
        {
            using var scope = NewDisposeScope();
            Tensor p = floatLogits[i].to(ScalarType.Float64).softmax(-1);
            Tensor logQ = model.forward(ids[i], null).to(ScalarType.Float64).log_softmax(-1);
            sum += p.mul(p.log().sub(logQ)).sum(-1).mean().item<double>();
        }
        return sum / ids.Length;
    }

    private static List<Tensor> FloatLogits(Llama model, Tensor[] ids)
    {
        using var noGrad = no_grad();
        return [.. ids.Select(i => model.forward(i, null))];
    }

    [Test]
    public void TuningBringsTheNextTokenDistributionsCloserWithTheSameCodes()
    {
        HfFiles.Write(Folder, TinyLlama.Config(), TinyLlama.Weights());
        using Llama model = Llama.FromHuggingFace(Folder);
        Tensor[] ids = Prompts();
        List<Tensor> floatLogits = FloatLogits(model, ids);
        model.Quantize(QType.QInt2, groupSize: 16);
        Dictionary<string, Tensor> codes = TunedModelChecks.Codes(model);
        double before = Divergence(model, ids, floatLogits);

        ScaleTuningReport report = model.TuneScales(ids, floatLogits,
            new ScaleTuningOptions { Epochs = 30, LearningRate = 5e-3 });

        double after = Divergence(model, ids, floatLogits);
        // q/k/v/o and gate/up/down in each layer; lm_head stays float.
        TunedModelChecks.KeptWithTheSameCodes(report, TinyLlama.Layers * 7, before, after, model, codes);
    }

    [Test]
    public void ModelsReadmeExampleRuns()
    {
        HfFiles.Write(Folder, TinyLlama.Config(), TinyLlama.Weights());
        using Llama model = Llama.FromHuggingFace(Folder);
        Tensor[] windows = Prompts();

        // --- Quanto.Models/README.md: Llama.TuneScales ---
        List<Tensor> floatLogits;
        using (no_grad()) floatLogits = windows.Select(ids => model.forward(ids, null)).ToList();
        model.Quantize(QType.QInt2);
        ScaleTuningReport report = model.TuneScales(windows, floatLogits);   // report.Summary: loss before/after
        // --- end ---

        Assert.That(report.Layers, Has.Count.EqualTo(TinyLlama.Layers * 7));
        Assert.That(Divergence(model, windows, floatLogits),
            Is.EqualTo(report.Kept ? report.FinalLoss : report.InitialLoss).Within(0.1).Percent,
            "the model runs with the weights the report says it kept");
        Assert.That(report.Summary, Does.StartWith($"Scale tuning: {TinyLlama.Layers * 7} layer(s)"));
    }

    [Test]
    public void RefusesMismatchedLogitsAndModelsWithNothingToTune()
    {
        HfFiles.Write(Folder, TinyLlama.Config(), TinyLlama.Weights());
        using Llama model = Llama.FromHuggingFace(Folder);
        Tensor[] ids = Prompts()[..2];
        List<Tensor> floatLogits = FloatLogits(model, ids);

        var floatModel = Assert.Throws<InvalidOperationException>(() => model.TuneScales(ids, floatLogits));
        Assert.That(floatModel!.Message, Does.Contain("found no frozen 2/4-bit weight"));

        model.Quantize(QType.QInt4, groupSize: 16);
        var count = Assert.Throws<ArgumentException>(() => model.TuneScales(ids, floatLogits[..1]));
        Assert.That(count!.Message, Does.Contain("2 sequences, 1 logits tensors"));
        using Tensor shorter = floatLogits[1].narrow(1, 0, 8);
        var shape = Assert.Throws<ArgumentException>(() => model.TuneScales(ids, [floatLogits[0], shorter]));
        Assert.That(shape!.Message, Does.Contain("Sequence 1: ids [1, 16]").And.Contain("got [1, 8, 64]"));
        Assert.Throws<ArgumentException>(() => model.TuneScales([], []));
    }
}
