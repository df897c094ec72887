using System.Globalization;
using System.Text.RegularExpressions;
using NUnit.Framework;
using Quanto.Demo.MiniLm;
using Quanto.Models.Bert;
using Quanto.Quantization;
using static TorchSharp.torch;

namespace Quanto.Tests.Demo;

/// <summary>
/// The MiniLM demo's calibrated recipes (GPTQ, the mixed-precision plan, SmoothQuant) on real weights and a few
/// calibration sentences: each is measured against the float model's own embeddings (TorchSharp float math), on the
/// calibration batches whose output error these recipes minimise.
/// </summary>
[TestFixture]
[Category("Demo")]
[NonParallelizable]
public sealed class MiniLmRecipeTests
{
    private string _cache = "";
    private string _checkpoint = "";
    private IReadOnlyList<TokenBatch> _calibration = [];
    private Tensor _float = null!;

    [OneTimeSetUp]
    public void Convert()
    {
        _cache = Path.Combine(Path.GetTempPath(), "quanto-minilm-recipes-" + Guid.NewGuid().ToString("N"));
        _checkpoint = MiniLmPackage.Checkpoint(_cache);
        SentenceTokenizer tokenizer;
        using (Stream vocab = MiniLmPackage.Vocabulary()) tokenizer = new SentenceTokenizer(vocab);
        // Two batches of different lengths, as the demo's calibration is.
        _calibration = new SentenceBatches(tokenizer, Corpus.Load(32, 8).Calibration, 4).Batches;
        using Bert model = Load();
        _float = MiniLmRecipes.Pass(model, _calibration).DetachFromDisposeScope();
    }

    [OneTimeTearDown]
    public void CleanUp()
    {
        _float.Dispose();
        if (Directory.Exists(_cache)) Directory.Delete(_cache, recursive: true);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void GptqLowersTheCalibrationErrorOfRoundToNearest(bool actOrder)
    {
        double rounded = Error(m => MiniLmRecipes.Weights(m, QType.QInt4, 128, new HqqOptimizer(), false));
        double gptq = Error(m => MiniLmRecipes.Gptq(m, _calibration, QType.QInt4, 128, new HqqOptimizer(),
            new GptqOptions { ActOrder = actOrder }));
        Assert.That(gptq, Is.LessThan(rounded * 0.9), $"GPTQ {gptq:E3} vs round to nearest {rounded:E3}");
    }

    [Test]
    public void ThePlanStaysWithinItsBudgetAndBeatsUniformInt2()
    {
        using Bert model = Load();
        // Three candidates instead of the default 13 and one in-context round keep the test short (a pass per layer
        // and hull candidate, then up to four per layer); GPTQ has its own test.
        PlanCandidate[] candidates =
            [new(QType.QInt2, 128, new MaxOptimizer()), new(QType.QInt4, 128, new MaxOptimizer()), new(QType.QInt8)];
        string? note = MiniLmRecipes.Plan(model, _calibration, MiniLmConfigs.PlanBits, candidates, refinements: 1);
        (_, _, double bits) = MiniLmSizes.Of(model);
        Assert.That(bits, Is.LessThanOrEqualTo(MiniLmConfigs.PlanBits), note);
        Assert.That(Quantizer.QuantizedModules(model).All(m => m.IsFrozen), "frozen");
        double planned = Error(model);
        double int2 = Error(m => MiniLmRecipes.Weights(m, QType.QInt2, 128, new MaxOptimizer(), false));
        Assert.That(planned, Is.LessThan(int2), note);
    }

    [Test]
    public void SmoothQuantScalesTheGroupsItCanFoldAndSaysSo()
    {
        using Bert model = Load();
        string? note = MiniLmRecipes.Static(model, _calibration, ["*LayerNorm"], smooth: true);
        // BERT is post-LN: a LayerNorm output is also the residual, so q/k/v and the intermediate layer take no
        // fold, nor does output.dense after GELU; attention's value -> output projection can (at most one group of
        // the four per layer, where a scale helps).
        Match counts = Regex.Match(note ?? "", "^SmoothQuant: ([0-9]+) of ([0-9]+) input groups scaled$");
        Assert.That(counts.Success, note);
        Assert.That(int.Parse(counts.Groups[2].Value, CultureInfo.InvariantCulture), Is.EqualTo(24));
        Assert.That(int.Parse(counts.Groups[1].Value, CultureInfo.InvariantCulture), Is.InRange(1, 6));
        Assert.That(Error(model), Is.LessThan(0.05), note);
    }

    [Test]
    public void StaticW8A8WithTheFfnOutputsWeightOnlyLowersTheError()
    {
        using Bert model = Load();
        MiniLmRecipes.Static(model, _calibration, ["*LayerNorm"], smooth: false, weightOnly: MiniLmConfigs.FfnOutput);
        var modules = Quantizer.QuantizedModules(model).ToDictionary(m => m.Path);
        // Six FFN output layers int8 weights only; attention's output.dense (also "*.output.dense") static W8A8.
        Assert.That(modules.Values.Where(m => m.ActivationQType is null).Select(m => m.Path),
            Is.EquivalentTo(Enumerable.Range(0, 6).Select(i => $"encoder.layer.{i}.output.dense")));
        Assert.That(modules["encoder.layer.0.attention.output.dense"].ActivationQType, Is.EqualTo(QType.QInt8));
        Assert.That(modules.Values.All(m => m.WeightQType == QType.QInt8 && m.IsFrozen));
        double mixed = Error(model);
        double lnFloat = Error(m => MiniLmRecipes.Static(m, _calibration, ["*LayerNorm"], smooth: false));
        Assert.That(mixed, Is.LessThan(lnFloat * 0.8), $"FFN outputs weight-only {mixed:E3} vs LN float {lnFloat:E3}");
    }

    private Bert Load()
    {
        Bert model = Bert.FromHuggingFace(_checkpoint);
        model.eval();
        return model;
    }

    /// <summary>Relative squared error of the calibration embeddings after <paramref name="recipe"/>.</summary>
    private double Error(Func<Bert, string?> recipe)
    {
        using Bert model = Load();
        recipe(model);
        return Error(model);
    }

    private double Error(Bert model)
    {
        using var scope = NewDisposeScope();
        Tensor output = MiniLmRecipes.Pass(model, _calibration);
        return output.sub(_float).square().sum().item<float>() / _float.square().sum().item<float>();
    }
}
