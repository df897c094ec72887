using System.Globalization;

namespace Quanto.Bench;

/// <summary>One measurement: a row of the table and of the CSV file.</summary>
internal sealed record BenchRow(string Kernel, string Format, int M, int K, int N, double MedianMs, double WeightGBps,
    double PctBandwidth, double SpeedupVsFp32, double SpeedupVsBf16)
{
    public const string CsvHeader =
        "kernel,format,m,k,n,median_ms,weight_gbps,pct_bandwidth,speedup_vs_fp32,speedup_vs_bf16";

    public string Csv() => string.Join(",", Kernel, Format, M, K, N, F(MedianMs, 4), F(WeightGBps, 2),
        F(PctBandwidth, 1), F(SpeedupVsFp32, 2), F(SpeedupVsBf16, 2));

    public static void PrintTable(IReadOnlyList<BenchRow> rows)
    {
        Console.WriteLine();
        Console.WriteLine("| kernel | format     |   m |    k |     n | median ms | weight GB/s | % bandwidth | vs fp32 | vs bf16 |");
        Console.WriteLine("|--------|------------|----:|-----:|------:|----------:|------------:|------------:|--------:|--------:|");
        foreach (BenchRow r in rows)
        {
            Console.WriteLine($"| {r.Kernel,-6} | {r.Format,-10} | {r.M,3} | {r.K,4} | {r.N,5} | {F(r.MedianMs, 3),9} | " +
                $"{F(r.WeightGBps, 1),11} | {F(r.PctBandwidth, 1),11} | {F(r.SpeedupVsFp32, 2),6}x | {F(r.SpeedupVsBf16, 2),6}x |");
        }
    }

    private static string F(double value, int digits) => value.ToString("F" + digits, CultureInfo.InvariantCulture);
}
