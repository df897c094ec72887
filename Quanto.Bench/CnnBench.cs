using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Bench;

/// <summary>
/// The MNIST-sized CNN (the demo's shape: conv 1->16, conv 16->32, fc 1568->128, fc 128->10) on a batch of 64, float
/// against frozen quantized copies. Convolutions run as unfold + the quantized matmul kernels (QConv2d).
/// </summary>
internal static class CnnBench
{
    private static readonly (string Name, QType? Weights, QType? Activations)[] Formats =
    [
        ("int8", QType.QInt8, null), ("int4", QType.QInt4, null), ("int2", QType.QInt2, null),
        ("fp8_e4m3fn", QType.QFloat8E4M3Fn, null), ("fp8_e5m2", QType.QFloat8E5M2, null), ("w8a8", QType.QInt8, QType.QInt8),
    ];

    public static void Run(BenchRunner runner, int batch = 64)
    {
        runner.ProbeBandwidth("cnn");
        using Tensor x = rand(batch, 1, 28, 28);
        var results = new List<(string Format, double Ms, long Bytes)>();
        using (var model = Create())
        {
            results.Add(("fp32", Time(model, x), FloatBytes(model)));
            model.to(ScalarType.BFloat16);
            using Tensor x16 = x.to(ScalarType.BFloat16);
            results.Add(("bf16", Time(model, x16), FloatBytes(model)));
        }
        foreach ((string name, QType? weights, QType? activations) in Formats)
        {
            using var model = Create();
            Quantizer.Quantize(model, weights: weights, activations: activations);
            if (activations is not null)
            {
                using var calibration = new Calibration();
                model.forward(x).Dispose();
            }
            Quantizer.Freeze(model);
            long bytes = Quantizer.QuantizedModules(model).Sum(m => m.QuantizedWeight!.ByteSize);
            results.Add((name, Time(model, x), bytes));
        }
        foreach ((string format, double ms, _) in results) Console.WriteLine($"  cnn {format}: {ms:F3} ms");
        runner.Add("cnn", batch, 28 * 28, 10, results);
    }

    private static TorchSharp.Modules.Sequential Create()
    {
        random.manual_seed(0);
        var model = Sequential(
            ("conv1", Conv2d(1, 16, 3, padding: 1)), ("relu1", ReLU()), ("pool1", MaxPool2d(2)),
            ("conv2", Conv2d(16, 32, 3, padding: 1)), ("relu2", ReLU()), ("pool2", MaxPool2d(2)),
            ("flatten", Flatten()), ("fc1", Linear(32 * 7 * 7, 128)), ("relu3", ReLU()), ("fc2", Linear(128, 10)));
        model.eval();
        return model;
    }

    private static double Time(Module<Tensor, Tensor> model, Tensor x)
    {
        using var noGrad = no_grad();
        return Timing.MedianMs(_ =>
        {
            using var scope = NewDisposeScope(); // intermediates freed per call, as a serving loop would
            model.forward(x);
        });
    }

    private static long FloatBytes(Module model) =>
        model.named_parameters().Where(p => p.name.EndsWith(".weight", StringComparison.Ordinal))
            .Sum(p => p.parameter.NumberOfElements * p.parameter.ElementSize);
}
