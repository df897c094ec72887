using static TorchSharp.torch;

namespace Quanto.Bench;

/// <summary>
/// Runs every format on one shape and appends rows with ratios against the fp32 and bf16 rows. The read bandwidth is
/// measured again before each shape: on a shared VM it moved between 35 and 58 GB/s from one minute to the next, so
/// each row's "% bandwidth" is against the probe taken next to it in time.
/// </summary>
internal sealed class BenchRunner(Func<double> measureBandwidthGBps, List<BenchRow> rows)
{
    private double _bandwidthGBps;

    /// <summary>Measures the read bandwidth for the rows that follow, and prints it.</summary>
    public void ProbeBandwidth(string what)
    {
        _bandwidthGBps = measureBandwidthGBps();
        Console.WriteLine($"Read bandwidth before {what}: {_bandwidthGBps:F1} GB/s");
    }

    public void Linear(string kernel, Tensor weight, int m, long rotationBytes)
    {
        ProbeBandwidth($"{kernel} m={m}");
        int n = (int)weight.shape[0], k = (int)weight.shape[1];
        using Tensor x = randn(m, k);
        var results = new List<(string Format, double Ms, long Bytes)>();
        foreach (var make in BenchFormat.All())
        {
            using BenchFormat format = make(weight, rotationBytes);
            double ms = Timing.MedianMs(call =>
            {
                using Tensor y = format.Run(x, call);
            }, measureSeconds: m >= 128 ? 1.5 : 1.0);
            results.Add((format.Name, ms, format.WeightBytes));
            Console.WriteLine($"  {kernel} m={m} {format.Name}: {ms:F3} ms");
        }
        Add(kernel, m, k, n, results);
    }

    /// <summary>Llama-7B's MLP at one token: down(silu(gate(x)) * up(x)), gate/up k -> hidden, down hidden -> k.</summary>
    public void Mlp(int k, int hidden, long rotationBytes)
    {
        ProbeBandwidth("mlp");
        using Tensor gateW = randn(hidden, k).mul(0.02f), upW = randn(hidden, k).mul(0.02f);
        using Tensor downW = randn(k, hidden).mul(0.02f);
        using Tensor x = randn(1, k);
        var results = new List<(string Format, double Ms, long Bytes)>();
        foreach (var make in BenchFormat.All())
        {
            // A third of the rotation budget per matrix: the three together exceed it.
            using BenchFormat gate = make(gateW, rotationBytes / 3), up = make(upW, rotationBytes / 3);
            using BenchFormat down = make(downW, rotationBytes / 3);
            double ms = Timing.MedianMs(call =>
            {
                using var scope = NewDisposeScope();
                Tensor h = nn.functional.silu(gate.Run(x, call)).mul(up.Run(x, call));
                down.Run(h.to(ScalarType.Float32), call);
            });
            results.Add((gate.Name, ms, gate.WeightBytes + up.WeightBytes + down.WeightBytes));
            Console.WriteLine($"  mlp {gate.Name}: {ms:F3} ms");
        }
        Add("mlp", 1, k, hidden, results);
    }

    /// <summary>Appends rows with GB/s, % of bandwidth and ratios against this shape's fp32 and bf16 results.</summary>
    public void Add(string kernel, int m, int k, int n, List<(string Format, double Ms, long Bytes)> results)
    {
        double fp32 = results.First(r => r.Format == "fp32").Ms, bf16 = results.First(r => r.Format == "bf16").Ms;
        foreach ((string format, double ms, long bytes) in results)
        {
            double gbps = bytes / (ms * 1e6);
            rows.Add(new BenchRow(kernel, format, m, k, n, ms, gbps, 100 * gbps / _bandwidthGBps, fp32 / ms, bf16 / ms));
        }
    }
}
