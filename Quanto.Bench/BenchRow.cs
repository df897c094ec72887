using System.Globalization;

namespace Quanto.Bench;

/// <summary>One measurement: a row of the table and of the CSV file.</summary>
/// <param name="Kernel">gemv (m = 1), gemm, mlp or cnn.</param>
/// <param name="Model">Whose layer the shape is (minilm, bert, llama7b) or empty.</param>
/// <param name="Format">fp32, bf16 (TorchSharp), int8, int4, ... (see BenchFormat).</param>
/// <param name="M">Rows of x.</param>
/// <param name="K">Input features.</param>
/// <param name="N">Output features.</param>
/// <param name="MedianMs">Median over rounds of each round's median call time.</param>
/// <param name="MinMs">Fastest round's median.</param>
/// <param name="MaxMs">Slowest round's median.</param>
/// <param name="WeightGBps">Stored weight bytes / median time.</param>
/// <param name="BandwidthGBps">Median of the read-bandwidth probes taken just before this format's rounds.</param>
/// <param name="SpeedupVsFp32">fp32 median / this median.</param>
/// <param name="SpeedupVsBf16">bf16 median / this median.</param>
internal sealed record BenchRow(string Kernel, string Model, string Format, int M, int K, int N, double MedianMs,
    double MinMs, double MaxMs, double WeightGBps, double BandwidthGBps, double SpeedupVsFp32, double SpeedupVsBf16)
{
    public const string CsvHeader = "kernel,model,format,m,k,n,median_ms,min_ms,max_ms,weight_gbps,probe_gbps," +
        "pct_bandwidth,speedup_vs_fp32,speedup_vs_bf16";

    public double PctBandwidth => 100 * WeightGBps / BandwidthGBps;

    public string Csv() => string.Join(",", Kernel, Model, Format, M, K, N, F(MedianMs, 4), F(MinMs, 4), F(MaxMs, 4),
        F(WeightGBps, 2), F(BandwidthGBps, 1), F(PctBandwidth, 1), F(SpeedupVsFp32, 2), F(SpeedupVsBf16, 2));

    public static void PrintTable(IReadOnlyList<BenchRow> rows)
    {
        Console.WriteLine();
        Console.WriteLine("| kernel | model | format | m | k | n | median ms | weight GB/s | probe GB/s | % bandwidth | " +
            "vs fp32 | vs bf16 |");
        Console.WriteLine("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        foreach (BenchRow r in rows)
        {
            Console.WriteLine($"| {r.Kernel} | {r.Model} | {r.Format} | {r.M} | {r.K} | {r.N} | {F(r.MedianMs, 3)} | " +
                $"{F(r.WeightGBps, 1)} | {F(r.BandwidthGBps, 1)} | {F(r.PctBandwidth, 1)} | {F(r.SpeedupVsFp32, 2)}x | " +
                $"{F(r.SpeedupVsBf16, 2)}x |");
        }
    }

    private static string F(double value, int digits) => value.ToString("F" + digits, CultureInfo.InvariantCulture);
}
