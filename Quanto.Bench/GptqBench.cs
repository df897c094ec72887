using System.Diagnostics;
using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Bench;

/// <summary>
/// <c>--gptq</c>: GPTQ time for one 4096 x 4096 layer from 128 calibration rows (issue #17's target: under 30 s on
/// 2 cores), per qtype and setting, with the relative output error on those rows next to round-to-nearest's.
/// </summary>
internal static class GptqBench
{
    public static void Run(int n = 4096, int k = 4096, int rows = 128)
    {
        Console.WriteLine($"GPTQ on one {n} x {k} layer, {rows} calibration rows, {get_num_threads()} torch threads");
        using var generator = new Generator(7);
        using Tensor weight = randn([n, k], generator: generator).mul_(0.02);
        using Tensor sources = randn([rows, 64], generator: generator);
        using Tensor mix = randn([64, k], generator: generator);
        using Tensor x = sources.mm(mix).add_(randn([rows, k], generator: generator));
        // Held-out rows of the same distribution: with rows << k the Hessian has low rank, so the error on the
        // calibration rows alone flatters GPTQ.
        using Tensor heldOut = randn([rows, 64], generator: generator).mm(mix)
            .add_(randn([rows, k], generator: generator));
        using Tensor heldOutHessian = heldOut.t().mm(heldOut);
        var watch = Stopwatch.StartNew();
        using var hessian = new GptqHessian(k);
        hessian.Add(x);
        Console.WriteLine($"  Hessian from {rows} rows: {watch.Elapsed.TotalSeconds:F2} s");
        foreach (Optimizer optimizer in new Optimizer[] { new MaxOptimizer(), new HqqOptimizer() })
        {
            watch.Restart();
            using QuantizedWeight plain = WeightQuantizer.Quantize(weight, QType.QInt4, 128, optimizer);
            Console.WriteLine($"  round-to-nearest qint4 g128 with {optimizer}: {watch.Elapsed.TotalSeconds:F2} s");
        }
        watch.Restart();
        using (Tensor u = Gptq.InverseCholeskyUpper(hessian.Matrix, 0.01))
            Console.WriteLine($"  of which the Cholesky factor of the inverse: {watch.Elapsed.TotalSeconds:F2} s");
        Console.WriteLine("  relative output error, calibration rows / held-out rows:");
        Console.WriteLine(
            "  | qtype | group | act-order | GPTQ s | RTN error | GPTQ error | RTN held-out | GPTQ held-out |");
        Console.WriteLine("  |---|---|---|---|---|---|---|---|");
        foreach ((QType qtype, int? group, bool actOrder) in new (QType, int?, bool)[]
                 {
                     (QType.QInt4, 128, false), (QType.QInt4, 128, true), (QType.QInt2, 64, false),
                     (QType.QInt8, null, false),
                 })
        {
            watch.Restart();
            using QuantizedWeight q = Gptq.Quantize(weight, hessian.Matrix, qtype, group,
                new GptqOptions { ActOrder = actOrder });
            double seconds = watch.Elapsed.TotalSeconds;
            using QuantizedWeight rtn = WeightQuantizer.Quantize(weight, qtype, group);
            using Tensor dq = q.Dequantize(), dr = rtn.Dequantize();
            double eg = Quantizer.RelativeOutputError(weight, dq, hessian.Matrix);
            double er = Quantizer.RelativeOutputError(weight, dr, hessian.Matrix);
            double hg = Quantizer.RelativeOutputError(weight, dq, heldOutHessian);
            double hr = Quantizer.RelativeOutputError(weight, dr, heldOutHessian);
            Console.WriteLine($"  | {qtype.QuantoName()} | {group?.ToString() ?? "-"} | {actOrder} | {seconds:F1} | " +
                              $"{er:E2} | {eg:E2} | {hr:E2} | {hg:E2} |");
        }
    }
}
