using System.Globalization;
using System.Text;

namespace Quanto.Demo.MiniLm;

/// <summary>The demo's table, for the console and as Markdown (the README's table is pasted from the file the demo
/// writes, so it is re-measured by running the demo).</summary>
internal static class MiniLmTable
{
    private static readonly string[] Headers =
    [
        "configuration", "mean cos", "min cos", "NN top-1", "Spearman", "MB", "non-emb MB", "bits/w",
        "batch 1 sent/s", "vs ORT", "batch 32 sent/s", "vs ORT",
    ];

    /// <summary>The table as aligned text.</summary>
    public static string Text(MiniLmReport report)
    {
        List<string[]> cells = Cells(report);
        int[] widths = Enumerable.Range(0, Headers.Length)
            .Select(c => cells.Append(Headers).Max(r => r[c].Length)).ToArray();
        var text = new StringBuilder();
        foreach (string[] row in cells.Prepend(Headers))
        {
            text.AppendLine(string.Join("  ", row.Select((cell, c) =>
                c == 0 ? cell.PadRight(widths[c]) : cell.PadLeft(widths[c]))).TrimEnd());
        }
        return text.ToString();
    }

    /// <summary>The table as Markdown, with its date, machine and corpus.</summary>
    public static string Markdown(MiniLmReport report)
    {
        var text = new StringBuilder();
        string date = report.Date.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture);
        text.AppendLine($"Measured {date} UTC on {report.Machine}; corpus: {F(report.Sentences, "F0")} sentences " +
                        $"({report.CorpusSource}). Accuracy is against ONNX Runtime fp32's embeddings; speed is the " +
                        "median of interleaved rounds in one run.");
        text.AppendLine();
        text.AppendLine("| " + string.Join(" | ", Headers) + " |");
        text.AppendLine("|" + string.Join("|", Headers.Select((_, c) => c == 0 ? "---" : "---:")) + "|");
        foreach (string[] row in Cells(report)) text.AppendLine("| " + string.Join(" | ", row) + " |");
        text.AppendLine();
        foreach (MiniLmRow row in report.Rows)
            text.AppendLine($"- {row.Name}: {row.Recipe}{(row.Note is null ? "" : $" ({row.Note})")}");
        return text.ToString();
    }

    private static List<string[]> Cells(MiniLmReport report)
    {
        Speed? reference = report.Reference.Speed;
        return report.Rows.Select(r => new[]
        {
            r.Name,
            F(r.Metrics.MeanCosine, "F5"),
            F(r.Metrics.MinCosine, "F5"),
            F(r.Metrics.NeighbourAgreement * 100, "F1") + "%",
            F(r.Metrics.Spearman, "F4"),
            F(r.Bytes / 1e6, "F1"),
            F(r.NonEmbeddingBytes / 1e6, "F1"),
            F(r.BitsPerWeight, "F2"),
            r.Speed is null ? "-" : F(r.Speed.Single, "F1"),
            r.Speed is null || reference is null ? "-" : F(r.Speed.Single / reference.Single, "F2") + "x",
            r.Speed is null ? "-" : F(r.Speed.Batched, "F1"),
            r.Speed is null || reference is null ? "-" : F(r.Speed.Batched / reference.Batched, "F2") + "x",
        }).ToList();
    }

    private static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
}
