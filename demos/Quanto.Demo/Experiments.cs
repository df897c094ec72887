using System.Diagnostics;
using Quanto.Nn;
using Quanto.Quantization;
using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto.Demo;

/// <summary>One quantization configuration of the MNIST CNN.</summary>
/// <param name="Name">Its row in the table.</param>
/// <param name="Weights">Weight qtype, or null.</param>
/// <param name="Activations">Activation qtype, or null.</param>
/// <param name="Qat">One epoch of quantization-aware training before freezing.</param>
/// <param name="Optimizer">The weight optimizer, or null for the library's default.</param>
/// <param name="Gptq">GPTQ on 1,024 training images (with the optimizer's group scales) instead of rounding to
/// nearest.</param>
internal sealed record Config(string Name, QType? Weights, QType? Activations, bool Qat = false,
    Optimizer? Optimizer = null, bool Gptq = false)
{
    /// <summary>False for the float baseline.</summary>
    public bool IsQuantized => Weights is not null || Activations is not null;
}

/// <summary>What one configuration measured. Reloaded holds the accuracies after a save/reload in each format;
/// Quantized the modules the generated code built, by path, with their qtypes (empty for fp32).</summary>
internal sealed record Result(Config Config, double Accuracy, long Bytes, double BatchMs, double SingleMs,
    IReadOnlyList<(string Format, double Accuracy)> Reloaded, IReadOnlyDictionary<string, QuantizationSpec> Quantized);

/// <summary>Runs each configuration on a fresh copy of the trained float model, through the code the [Quantize]
/// generator wrote for <see cref="DigitsCnn"/>.</summary>
internal static class Experiments
{
    public static readonly Config[] All =
    [
        new("fp32", null, null),
        new("w8 (qint8)", QType.QInt8, null),
        new("w4 (qint4 g128)", QType.QInt4, null),
        new("w4 Max (quanto)", QType.QInt4, null, Optimizer: new MaxOptimizer()),
        new("w4 GPTQ", QType.QInt4, null, Gptq: true),
        new("w2 (qint2 g128)", QType.QInt2, null),
        new("w2 Max (quanto)", QType.QInt2, null, Optimizer: new MaxOptimizer()),
        new("w2 GPTQ", QType.QInt2, null, Gptq: true),
        new("w-fp8 (e4m3fn)", QType.QFloat8E4M3Fn, null),
        new("w8a8 (calibrated)", QType.QInt8, QType.QInt8),
        new("w8 a-fp8 e4m3fn", QType.QInt8, QType.QFloat8E4M3Fn),
        new("w4 + QAT", QType.QInt4, null, Qat: true),
        new("w2 + QAT", QType.QInt2, null, Qat: true),
    ];

    public static Result Run(Config config, string weightsPath, Mnist data, string outputDir)
    {
        using var model = new DigitsCnn();
        Training.TrainOrLoad(model, data, weightsPath, epochs: 0, quiet: true);
        model.eval();
        Func<Tensor, Tensor> forward = model.forward;
        if (config.IsQuantized)
        {
            // The generated lifecycle; the configuration's qtypes override the class's [Quantize] for every layer.
            model.Quantize(config.Weights, config.Activations, optimizer: config.Optimizer);
            if (config.Activations is not null)
            {
                using var calibration = model.Calibrate();
                using var noGrad = no_grad();
                for (long start = 0; start < 1024; start += 128)
                    model.ForwardQuantized(data.TrainImages.narrow(0, start, 128)).Dispose();
            }
            if (config.Gptq)
            {
                using Tensor images = data.TrainImages.narrow(0, 0, 1024);
                Quantizer.Gptq(model.QuantizedModules(), () => model.ForwardQuantized(images));
            }
            if (config.Qat)
                Training.Train(model, model.ForwardQuantized, data, epochs: 1, lr: 1e-4, $"QAT {config.Name}");
            model.Freeze();
            forward = model.ForwardQuantized;
        }
        double accuracy = Training.Accuracy(forward, data);
        long bytes = config.IsQuantized
            ? Quantizer.ModelBytes(model, model.QuantizedModules())
            : Quantizer.ModelBytes(model);
        using Tensor batch = data.TestImages.narrow(0, 0, 64);
        using Tensor single = data.TestImages.narrow(0, 0, 1);
        var reloaded = new List<(string, double)>();
        var quantized = new Dictionary<string, QuantizationSpec>();
        if (config.IsQuantized)
        {
            foreach (QModule m in model.QuantizedModules())
                quantized[m.Path] = new QuantizationSpec(m.WeightQType, m.ActivationQType);
            // optimum-quanto-compatible safetensors (+ quanto_qmap.json beside it) and the .qnt package: save, then
            // load into a fresh instance (its twins built from the file's map) and measure it again.
            string stem = Path.Combine(outputDir, FileStem(config.Name));
            foreach (string path in new[] { stem + ".safetensors", stem + ".qnt" })
            {
                model.SaveQuantized(path);
                using var fresh = new DigitsCnn();
                fresh.eval();
                fresh.LoadQuantized(path);
                reloaded.Add((Path.GetExtension(path), Training.Accuracy(fresh.ForwardQuantized, data)));
            }
        }
        return new Result(config, accuracy, bytes, MedianMs(forward, batch), MedianMs(forward, single), reloaded,
            quantized);
    }

    /// <summary>The eager path on a plain copy (<see cref="Quantizer.Quantize"/>, then Freeze), weights only: the
    /// cross-check that the generated code builds the same model.</summary>
    public static double EagerAccuracy(QType weights, string weightsPath, Mnist data)
    {
        using var model = new EagerDigitsCnn();
        Training.TrainOrLoad(model, data, weightsPath, epochs: 0, quiet: true);
        Quantizer.Quantize(model, weights);
        Quantizer.Freeze(model);
        return Training.Accuracy(model, data);
    }

    /// <summary>A configuration's name as a file name ("w4 (qint4 g128)" -> "w4-qint4-g128").</summary>
    internal static string FileStem(string name) =>
        new string(name.Select(c => char.IsLetterOrDigit(c) ? c : '-').ToArray()).Trim('-').Replace("--", "-");

    /// <summary>
    /// Median of 41 timed forwards after half a second of warm-up ones. The warm-up is by time, not count: .NET
    /// compiles a new configuration's code optimised on a background thread about 100 ms after it stops meeting new
    /// methods, and while it does, that thread takes one of the two cores from libtorch's (batch 64 ran 6.7 instead of
    /// 3.7 ms). Each forward's tensors, intermediates included, are freed when it ends (a dispose scope), as a serving
    /// loop would, so no call runs on fresh, faulting memory.
    /// </summary>
    private static double MedianMs(Func<Tensor, Tensor> forward, Tensor input)
    {
        using var noGrad = no_grad();
        var warmUp = Stopwatch.StartNew();
        for (int i = 0; i < 5 || warmUp.ElapsedMilliseconds < 500; i++)
        {
            using (NewDisposeScope()) forward(input);
        }
        var times = new double[41];
        for (int i = 0; i < times.Length; i++)
        {
            long start = Stopwatch.GetTimestamp();
            using (NewDisposeScope()) forward(input);
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(times);
        return times[times.Length / 2];
    }
}
