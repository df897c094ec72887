using NUnit.Framework;
using Quanto.Quantization;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Quantization;

/// <summary>The README's accuracy examples, verbatim, so they keep compiling and running.</summary>
public sealed class ReadmeAccuracyExampleTests
{
    [Test]
    public void MixedPrecisionAwqAndGptqExampleRuns()
    {
        random.manual_seed(0);
        var log = new StringWriter();
        Console.SetError(log);
        try
        {
            // --- README: accuracy, weights ---
            var model = Sequential(("fc1", Linear(256, 512)), ("act", ReLU()), ("fc2", Linear(512, 10)));
            model.eval();
            Tensor calibration = randn(128, 256), test = randn(32, 256);

            // Measure every layer, then pick qtype, group size and optimizer per layer within 4.5 bits per weight
            // (scales and shifts counted).
            QuantizationPlan plan = Quantizer.Plan(model, [calibration], bitsPerWeight: 4.5);
            Console.WriteLine(plan);                                 // per layer: choice, bits/weight, errors
            model.Quantize(plan);                                    // each layer as planned (dynamic mode)
            SmoothingReport awq = Quantizer.Awq(model, [calibration]);           // activation-aware scales
            GptqReport gptq = Quantizer.Gptq(model, [calibration], progress: new ConsoleProgressBar()); // freezes
            Console.WriteLine(gptq);                                 // per layer: output error, plain vs GPTQ
            Tensor y = model.forward(test);
            // --- end ---

            Assert.That(plan.BitsPerWeight, Is.LessThanOrEqualTo(4.5));
            Assert.That(awq.Groups.Select(g => g.Producer), Is.EqualTo(new[] { null, "fc1" }), "fc2 is fed by fc1");
            Assert.That(gptq.Layers.Select(l => l.Path), Is.EqualTo(new[] { "fc1", "fc2" }));
            Assert.That(Quantizer.QuantizedModules(model).All(m => m.IsFrozen), Is.True);
            Assert.That(y.shape, Is.EqualTo(new long[] { 32, 10 }));
            Assert.That(log.ToString(), Does.Contain("GPTQ   2/2 fc2"));
            model.Dispose();
        }
        finally
        {
            Console.SetError(new StreamWriter(Console.OpenStandardError()) { AutoFlush = true });
        }
    }

    [Test]
    public void W8A8ExampleRuns()
    {
        random.manual_seed(0);
        // --- README: accuracy, activations ---
        var model = Sequential(("norm", LayerNorm(256)), ("fc1", Linear(256, 512)), ("act", ReLU()),
            ("fc2", Linear(512, 10)));
        model.eval();
        Tensor calibration = randn(128, 256);

        Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8, exclude: ["norm"]);
        SmoothingReport smooth = Quantizer.SmoothQuant(model, [calibration]);   // outlier channels -> weights
        Calibration run;
        using (run = new Calibration(observer: new RunningMaxObserver()))     // streaming-safe ranges
            model.forward(calibration);
        foreach (CalibrationWarning warning in run.Warnings) Console.WriteLine(warning);
        Quantizer.Freeze(model);
        // --- end ---

        Assert.That(smooth.Groups.Where(g => g.Applied).Select(g => g.Producer), Is.EqualTo(new[] { "norm", "fc1" }));
        Assert.That(Quantizer.QuantizedModules(model).All(m => m.InputCalibrated && m.IsFrozen), Is.True);
        model.Dispose();
    }
}
