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
        using Tensor x = rand(batch, 1, 28, 28);
        string[] names = ["fp32", "bf16", .. Formats.Select(f => f.Name)];
        runner.Measure("cnn", new BenchShape(batch, 28 * 28, 10, "mnist"), names, name =>
        {
            using var model = Create();
            if (name is "fp32" or "bf16")
            {
                if (name == "bf16") model.to(ScalarType.BFloat16);
                using Tensor input = x.to(model.parameters().First().dtype);
                return (Time(model, input), FloatBytes(model));
            }
            (_, QType? weights, QType? activations) = Formats.First(f => f.Name == name);
            Quantizer.Quantize(model, weights: weights, activations: activations);
            if (activations is not null)
            {
                using var calibration = new Calibration();
                model.forward(x).Dispose();
            }
            Quantizer.Freeze(model);
            return (Time(model, x), Quantizer.QuantizedModules(model).Sum(m => m.QuantizedWeight!.ByteSize));
        });
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
