using NUnit.Framework;
using Quanto.Models.Bert;
using Quanto.Quantization;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

/// <summary>Bert.TuneScales: the group scales of a quantized encoder fitted to the float model's last hidden
/// states, against the masked relative squared error computed here in float64 from its definition.</summary>
public sealed class BertTuningTests : TempFolderTests
{
    /// <summary>Four batches of two sentences, the second one padded by two tokens.</summary>
    private static (Tensor[] Ids, Tensor[] Masks) Batches()
    {
        var g = new Generator(11);
        Tensor[] ids = [.. Enumerable.Range(0, 4).Select(_ =>
            randint(4, TinyBert.Vocab, [2, 8], generator: g, dtype: ScalarType.Int64))];
        long[,] mask = { { 1, 1, 1, 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 1, 1, 0, 0 } };
        Tensor[] masks = [.. ids.Select(_ => tensor(mask))];
        return (ids, masks);
    }

    private static List<Tensor> Hidden(Bert model, Tensor[] ids, Tensor[] masks)
    {
        using var noGrad = no_grad();
        return [.. ids.Select((x, i) => model.forward(x, masks[i], zeros_like(x)))];
    }

    /// <summary>mean over batches of sum_kept (h - t)² / sum_kept t².</summary>
    private static double Error(Bert model, Tensor[] ids, Tensor[] masks, IReadOnlyList<Tensor> targets)
    {
        List<Tensor> hidden = Hidden(model, ids, masks);
        double sum = 0;
        for (int i = 0; i < ids.Length; i++)
        {
            using var scope = NewDisposeScope();
            Tensor keep = masks[i].unsqueeze(-1).to(ScalarType.Float64);
            Tensor h = hidden[i].to(ScalarType.Float64), t = targets[i].to(ScalarType.Float64);
            sum += h.sub(t).mul(keep).square().sum().item<double>() / t.mul(keep).square().sum().item<double>();
            hidden[i].Dispose();
        }
        return sum / ids.Length;
    }

    [Test]
    public void TuningBringsTheHiddenStatesCloserWithTheSameCodes()
    {
        HfFiles.Write(Folder, TinyBert.Config(), TinyBert.Weights());
        using Bert model = Bert.FromHuggingFace(Folder);
        (Tensor[] ids, Tensor[] masks) = Batches();
        List<Tensor> targets = Hidden(model, ids, masks);
        model.Quantize(QType.QInt2, groupSize: 8);
        Dictionary<string, Tensor> codes = TunedModelChecks.Codes(model);
        double before = Error(model, ids, masks, targets);

        ScaleTuningReport report = model.TuneScales(ids, masks, targets,
            new ScaleTuningOptions { Epochs = 30, LearningRate = 5e-3 });

        double after = Error(model, ids, masks, targets);
        // q/k/v, the attention output and the two FFN layers in each layer.
        TunedModelChecks.KeptWithTheSameCodes(report, TinyBert.Layers * 6, before, after, model, codes);
    }

    [Test]
    public void RefusesMismatchedBatchesAndModelsWithNothingToTune()
    {
        HfFiles.Write(Folder, TinyBert.Config(), TinyBert.Weights());
        using Bert model = Bert.FromHuggingFace(Folder);
        (Tensor[] ids, Tensor[] masks) = Batches();
        List<Tensor> targets = Hidden(model, ids, masks);

        var floatModel = Assert.Throws<InvalidOperationException>(() => model.TuneScales(ids, masks, targets));
        Assert.That(floatModel!.Message, Does.Contain("found no frozen 2/4-bit weight"));

        model.Quantize(QType.QInt4, groupSize: 8);
        var count = Assert.Throws<ArgumentException>(() => model.TuneScales(ids, masks[..3], targets));
        Assert.That(count!.Message, Does.Contain("4 batches, 3 masks, 4 hidden states"));
        using Tensor shorter = targets[2].narrow(1, 0, 6);
        var shape = Assert.Throws<ArgumentException>(
            () => model.TuneScales(ids, masks, [targets[0], targets[1], shorter, targets[3]]));
        Assert.That(shape!.Message, Does.Contain("Batch 2: ids [2, 8]").And.Contain("hidden states [2, 6, 16]"));
        Assert.Throws<ArgumentException>(() => model.TuneScales([], [], []));
    }
}
