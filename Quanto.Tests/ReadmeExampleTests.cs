using NUnit.Framework;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests;

/// <summary>The README's eager-workflow example, verbatim, so it keeps compiling and running.</summary>
public sealed class ReadmeExampleTests
{
    [Test]
    public void EagerWorkflowExampleRuns()
    {
        // --- README: eager workflow ---
        var model = Sequential(("fc1", Linear(784, 256)), ("act", ReLU()), ("fc2", Linear(256, 10)));
        model.eval();
        Tensor samples = rand(64, 784);

        QuantizationReport report = Quantizer.Quantize(model, weights: QType.QInt4, activations: QType.QInt8);
        Console.WriteLine(report);                    // what was quantized, and what stayed float and why
        using (new Calibration(model, momentum: 0.9))
            model.forward(samples);                   // records activation ranges
        Quantizer.Freeze(model);                      // int4 weights replace the float ones
        Tensor y = model.forward(samples);            // quantized inference
        // --- end ---

        Assert.That(report.Quantized.Select(q => q.Path), Is.EqualTo(new[] { "fc1", "fc2" }));
        Assert.That(y.shape, Is.EqualTo(new long[] { 64, 10 }));
        Assert.That(Quantizer.QuantizedModules(model).All(m => m.IsFrozen), Is.True);
        model.Dispose();
    }
}
