using System.Diagnostics;
using Quanto.Serialization;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Demo;

/// <summary>One quantization configuration of the MNIST CNN and what it measured.</summary>
internal sealed record Config(string Name, QType? Weights, QType? Activations, bool Qat = false);

/// <summary>What one configuration measured; ReloadedAccuracy holds the accuracies after a save/reload in each format.</summary>
internal sealed record Result(Config Config, double Accuracy, long Bytes, double BatchMs, double SingleMs,
    IReadOnlyList<(string Format, double Accuracy)> Reloaded);

/// <summary>Runs each configuration on a fresh copy of the trained float model.</summary>
internal static class Experiments
{
    public static readonly Config[] All =
    [
        new("fp32", null, null),
        new("w8 (qint8)", QType.QInt8, null),
        new("w4 (qint4 g128)", QType.QInt4, null),
        new("w2 (qint2 g128)", QType.QInt2, null),
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
        if (config.Weights is not null || config.Activations is not null)
        {
            Quantizer.Quantize(model, weights: config.Weights, activations: config.Activations);
            if (config.Activations is not null)
            {
                using var calibration = new Calibration();
                using var noGrad = no_grad();
                for (long start = 0; start < 1024; start += 128)
                    model.forward(data.TrainImages.narrow(0, start, 128)).Dispose();
            }
            if (config.Qat) Training.Train(model, data, epochs: 1, lr: 1e-4, $"QAT {config.Name}");
            Quantizer.Freeze(model);
        }
        double accuracy = Training.Accuracy(model, data);
        long bytes = Quantizer.ModelBytes(model);
        using Tensor batch = data.TestImages.narrow(0, 0, 64);
        using Tensor single = data.TestImages.narrow(0, 0, 1);
        var reloaded = new List<(string, double)>();
        if (config.Weights is not null)
        {
            // optimum-quanto-compatible safetensors (+ quanto_qmap.json beside it) and the .qnt package: save, then
            // requantize a fresh float model from the file and measure it again.
            string stem = Path.Combine(outputDir, FileStem(config.Name));
            foreach (string path in new[] { stem + ".safetensors", stem + ".qnt" })
            {
                model.SaveQuantized(path);
                using var fresh = new DigitsCnn();
                fresh.eval();
                fresh.LoadQuantized(path);
                reloaded.Add((Path.GetExtension(path), Training.Accuracy(fresh, data)));
            }
        }
        return new Result(config, accuracy, bytes, MedianMs(model, batch), MedianMs(model, single), reloaded);
    }

    private static string FileStem(string name) =>
        new string(name.Select(c => char.IsLetterOrDigit(c) ? c : '-').ToArray()).Trim('-').Replace("--", "-");

    private static double MedianMs(Module<Tensor, Tensor> model, Tensor input)
    {
        using var noGrad = no_grad();
        for (int i = 0; i < 5; i++) model.forward(input).Dispose();
        var times = new double[41];
        for (int i = 0; i < times.Length; i++)
        {
            long start = Stopwatch.GetTimestamp();
            model.forward(input).Dispose();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(times);
        return times[times.Length / 2];
    }
}
