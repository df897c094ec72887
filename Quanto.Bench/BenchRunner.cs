using static TorchSharp.torch;

namespace Quanto.Bench;

/// <summary>
/// Runs the selected formats on one shape and appends rows with ratios against the fp32 and bf16 rows of the same
/// shape. Formats are timed one after another within each round (interleaved A/B), and the read bandwidth is probed
/// just before each format's timing: each row's "% bandwidth" is against the probes next to it in time.
/// </summary>
internal sealed class BenchRunner(BenchOptions options, List<BenchRow> rows)
{
    private long RotationBytes => options.Hot ? 0 : 256L << 20;

    private IReadOnlyList<(string Name, Func<Tensor, long, BenchFormat> Make)> Formats =>
        BenchFormat.Selected(options.Formats);

    /// <summary>y = x · Wᵀ for x (m, k), W (n, k) (Gaussian, std 0.02, a fixed seed per (n, k)).</summary>
    public void Linear(BenchShape shape)
    {
        using Tensor weight = Weight(shape.N, shape.K);
        using Tensor x = randn(shape.M, shape.K);
        string kernel = shape.M == 1 ? "gemv" : "gemm";
        Measure(kernel, shape, format =>
        {
            using BenchFormat f = format.Make(weight, RotationBytes);
            double ms = Timing.MedianMs(call =>
            {
                using Tensor y = f.Run(x, call);
            }, warmupSeconds: 0.2, measureSeconds: options.Seconds);
            return (ms, f.WeightBytes);
        });
        QuantFormat.ForgetQuantized();
    }

    /// <summary>Llama-7B's MLP at one token: down(silu(gate(x)) * up(x)), gate/up k -> hidden, down hidden -> k.</summary>
    public void Mlp(int k, int hidden)
    {
        using Tensor gateW = Weight(hidden, k), upW = Weight(hidden, k, seed: 2), downW = Weight(k, hidden, seed: 3);
        using Tensor x = randn(1, k);
        Measure("mlp", new BenchShape(1, k, hidden, "llama7b"), format =>
        {
            // A third of the rotation budget per matrix: the three together exceed it.
            using BenchFormat gate = format.Make(gateW, RotationBytes / 3), up = format.Make(upW, RotationBytes / 3);
            using BenchFormat down = format.Make(downW, RotationBytes / 3);
            double ms = Timing.MedianMs(call =>
            {
                using var scope = NewDisposeScope();
                Tensor h = nn.functional.silu(gate.Run(x, call)).mul(up.Run(x, call));
                down.Run(h.to(ScalarType.Float32), call);
            }, measureSeconds: options.Seconds);
            return (ms, gate.WeightBytes + up.WeightBytes + down.WeightBytes);
        });
        QuantFormat.ForgetQuantized();
    }

    /// <summary>Rounds x formats of <paramref name="time"/>(format) -> (median ms, weight bytes), then the rows.</summary>
    public void Measure(string kernel, BenchShape shape,
        Func<(string Name, Func<Tensor, long, BenchFormat> Make), (double Ms, long Bytes)> time) =>
        Measure(kernel, shape, Formats.Select(f => f.Name).ToArray(), name => time(Formats.First(f => f.Name == name)));

    /// <summary>The same for formats given by name (the CNN rows time whole models).</summary>
    public void Measure(string kernel, BenchShape shape, IReadOnlyList<string> formats,
        Func<string, (double Ms, long Bytes)> time)
    {
        var results = formats.ToDictionary(f => f, _ => (Ms: new List<double>(), Probes: new List<double>(), Bytes: 0L));
        for (int round = 0; round < options.Rounds; round++)
        {
            foreach (string format in formats)
            {
                double probe = MemoryBandwidth.MeasureGBps();
                (double ms, long bytes) = time(format);
                var entry = results[format];
                entry.Ms.Add(ms);
                entry.Probes.Add(probe);
                results[format] = entry with { Bytes = bytes };
                Console.WriteLine($"  {kernel} {shape.Label} {shape} {format}" +
                    $"{(options.Rounds > 1 ? $" round {round + 1}" : "")}: {ms:F3} ms (probe {probe:F1} GB/s)");
            }
        }
        double fp32 = Median(results["fp32"].Ms), bf16 = Median(results["bf16"].Ms);
        foreach (string format in formats)
        {
            var (ms, probes, bytes) = results[format];
            double median = Median(ms);
            rows.Add(new BenchRow(kernel, shape.Label, format, shape.M, shape.K, shape.N, median, ms.Min(), ms.Max(),
                bytes / (median * 1e6), Median(probes), fp32 / median, bf16 / median));
        }
    }

    private static double Median(List<double> values)
    {
        double[] sorted = [.. values.Order()];
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    private static Tensor Weight(int n, int k, int seed = 1)
    {
        using var generator = new TorchSharp.torch.Generator((ulong)(seed * 1_000_003 + n * 31 + k));
        return randn([n, k], generator: generator).mul(0.02f);
    }
}
