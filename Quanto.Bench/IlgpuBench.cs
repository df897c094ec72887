using System.Diagnostics;
using System.Globalization;
using System.Text;
using Quanto.Kernels.Ilgpu;
using Quanto.Kernels.Ilgpu.Accelerators;
using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Bench;

/// <summary>One measured format on one accelerator.</summary>
/// <param name="Backend">Backend name ("ilgpu-cpu").</param>
/// <param name="Device">Device name as the driver reports it.</param>
/// <param name="Format">"int8", "fp8_e4m3fn", "fp8_e5m2", "int4_g128", "int2_g128" or "w8a8".</param>
/// <param name="M">Rows of x.</param>
/// <param name="N">Output features.</param>
/// <param name="K">Input features.</param>
/// <param name="Milliseconds">Median wall time of one call (x upload, kernel, y download).</param>
/// <param name="DeviceBytes">Bytes of the prepared weight on the accelerator (what each call reads).</param>
internal sealed record IlgpuBenchmarkRow(string Backend, string Device, string Format, int M, int N, int K,
    double Milliseconds, long DeviceBytes)
{
    /// <summary>Weight bytes read per second, in GB/s (10^9).</summary>
    public double GigabytesPerSecond => DeviceBytes / (Milliseconds * 1e-3) / 1e9;
}

/// <summary>
/// Times every format on ILGPU accelerators for the benchmark table (<c>--ilgpu</c>). A call is timed end to end (x to the device,
/// the kernel, y back), as a model sees it; the median of the timed calls is reported after one warm-up call, which
/// also compiles the kernel.
/// </summary>
internal static class IlgpuBenchmark
{
    /// <summary>The formats measured, with the qtype and group size each uses.</summary>
    public static IReadOnlyList<(string Name, QType QType, int? Group, bool W8A8)> Formats { get; } =
    [
        ("int8", QType.QInt8, null, false),
        ("fp8_e4m3fn", QType.QFloat8E4M3Fn, null, false),
        ("fp8_e5m2", QType.QFloat8E5M2, null, false),
        ("int4_g128", QType.QInt4, 128, false),
        ("int2_g128", QType.QInt2, 128, false),
        ("w8a8", QType.QInt8, null, true),
    ];

    /// <summary>Measures every format on <paramref name="backend"/> for y (M, N) = x (M, K) · Wᵀ.</summary>
    /// <param name="backend">The backend (its accelerator) to time.</param>
    /// <param name="n">Output features.</param>
    /// <param name="k">Input features (a multiple of 128 keeps the int2/int4 group at 128).</param>
    /// <param name="m">Rows of x (1: GEMV).</param>
    /// <param name="iterations">Timed calls per format.</param>
    public static IReadOnlyList<IlgpuBenchmarkRow> Run(IlgpuKernels backend, int n, int k, int m = 1, int iterations = 5)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(iterations);
        var rows = new List<IlgpuBenchmarkRow>();
        using var scope = NewDisposeScope();
        using var generator = new Generator(1);
        Tensor w = randn([n, k], generator: generator);
        Tensor x = randn([m, k], generator: generator);
        Tensor codes = x.mul(40).clamp(-128, 127).round().to(ScalarType.Int8);
        Tensor xScale = tensor(0.025f);
        foreach ((string name, QType qtype, int? group, bool w8a8) in Formats)
        {
            using QuantizedWeight qw = WeightQuantizer.Quantize(w, qtype, group);
            using var prepared = (IlgpuPreparedWeight)backend.Prepare(qw);
            Func<Tensor> call = w8a8
                ? () => backend.LinearInt8(codes, xScale, prepared, null, ScalarType.Float32)
                : () => backend.Linear(x, prepared, null);
            call().Dispose();
            var times = new double[iterations];
            for (int i = 0; i < iterations; i++)
            {
                long start = Stopwatch.GetTimestamp();
                call().Dispose();
                times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
            Array.Sort(times);
            rows.Add(new IlgpuBenchmarkRow(backend.Name, backend.Report.Chosen.Name, name, m, n, k,
                times[iterations / 2], prepared.DeviceBytes));
        }
        return rows;
    }

    /// <summary>
    /// Measures on every accelerator kind present: CUDA, OpenCL (through the generic-address-space opt-in when
    /// <paramref name="allowOpenCLOptIn"/>) and the CPU accelerator. Kinds that are absent are skipped. The CPU
    /// accelerator takes seconds per call even at 1024 x 1024, so it runs <paramref name="simulatedShape"/> instead
    /// (default 1024 x 1024).
    /// </summary>
    public static IReadOnlyList<IlgpuBenchmarkRow> RunEveryAccelerator(int n, int k, int m = 1, int iterations = 5,
        bool allowOpenCLOptIn = true, (int N, int K)? simulatedShape = null)
    {
        var rows = new List<IlgpuBenchmarkRow>();
        foreach (AcceleratorKind kind in new[] { AcceleratorKind.Cuda, AcceleratorKind.OpenCL, AcceleratorKind.Cpu })
        {
            IlgpuKernels backend;
            try
            {
                backend = new IlgpuKernels(new IlgpuOptions
                {
                    Accelerator = kind,
                    AllowOpenCLWithoutGenericAddressSpace = allowOpenCLOptIn,
                });
            }
            catch (NotSupportedException)
            {
                continue;
            }
            (int runN, int runK) = kind == AcceleratorKind.Cpu ? simulatedShape ?? (1024, 1024) : (n, k);
            using (backend) rows.AddRange(Run(backend, runN, runK, m, iterations));
        }
        return rows;
    }

    /// <summary>A Markdown table of <paramref name="rows"/>.</summary>
    public static string ToMarkdown(IEnumerable<IlgpuBenchmarkRow> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var text = new StringBuilder();
        text.AppendLine("| backend | device | format | M x N x K | ms / call | weight GB/s |");
        text.AppendLine("|---|---|---|---|---:|---:|");
        foreach (IlgpuBenchmarkRow r in rows)
        {
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {r.Backend} | {r.Device} | {r.Format} | {r.M} x {r.N} x {r.K} | {r.Milliseconds:F2} | " +
                $"{r.GigabytesPerSecond:G3} |");
        }
        return text.ToString();
    }
}
