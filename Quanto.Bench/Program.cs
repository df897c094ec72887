using System.Diagnostics;
using Quanto;
using Quanto.Kernels;
using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

// GEMV 1 x 4096 by 4096 x 4096: TorchSharp fp32 F.linear against the reference (dequantize-once) backend, per
// format. Medians of 50 calls after warm-up; ratios come from the same run.
const int K = 4096, N = 4096, Iterations = 50;
using var generator = new Generator(0);
using Tensor weight = randn([N, K], generator: generator);
using Tensor x = randn([1, K], generator: generator);

double baseline = Median(() => nn.functional.linear(x, weight).Dispose());
Console.WriteLine($"GEMV 1x{K} . {K}x{N} on {Environment.ProcessorCount} cores, median of {Iterations}");
Console.WriteLine($"{"format",-18} {"ms",8} {"vs fp32",8}");
Console.WriteLine($"{"fp32 F.linear",-18} {baseline,8:F3} {1.0,7:F2}x");
foreach (QType qtype in QTypes.All)
{
    using QuantizedWeight q = WeightQuantizer.Quantize(weight, qtype);
    IQuantKernels backend = QuantKernels.Select(q, ScalarType.Float32, CPU);
    using PreparedWeight prepared = backend.Prepare(q);
    double ms = Median(() => backend.Linear(x, prepared, null).Dispose());
    Console.WriteLine($"{qtype.QuantoName() + " " + backend.Name,-18} {ms,8:F3} {baseline / ms,7:F2}x");
}

static double Median(Action call)
{
    for (int i = 0; i < 5; i++) call();
    var times = new double[Iterations];
    for (int i = 0; i < Iterations; i++)
    {
        long start = Stopwatch.GetTimestamp();
        call();
        times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }
    Array.Sort(times);
    return times[Iterations / 2];
}
