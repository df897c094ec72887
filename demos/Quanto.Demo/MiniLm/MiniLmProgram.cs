namespace Quanto.Demo.MiniLm;

/// <summary>The MiniLM part of the main demo: runs it, prints the table, writes the chart and the Markdown table
/// beside the MNIST chart, and fails the process when the port does not match ONNX Runtime or a reload differs.
/// </summary>
internal static class MiniLmProgram
{
    /// <summary>The port's target: its fp32 embeddings against ONNX Runtime's, worst sentence of the corpus.</summary>
    public const double PortMinCosine = 0.99999;

    /// <summary>Runs the demo; <paramref name="only"/> (from <c>--only A,B</c>) keeps the configurations whose
    /// names contain one of its comma-separated parts, and <c>quick</c> the ones that quantize in about a second
    /// (no GPTQ, no planning); <paramref name="speed"/> false (<c>--no-speed</c>) skips the speed rounds;
    /// <paramref name="calibration"/> (<c>--calibration N</c>) is the number of calibration sentences.</summary>
    public static void Run(string cache, string? only = null, bool speed = true,
        int calibration = Corpus.DefaultCalibration)
    {
        IReadOnlyList<MiniLmConfig> configs = only switch
        {
            null => MiniLmConfigs.All,
            "quick" => MiniLmConfigs.Quick,
            _ => MiniLmConfigs.Matching(only.Split(',', StringSplitOptions.RemoveEmptyEntries)),
        };
        Console.WriteLine();
        Console.WriteLine("== all-MiniLM-L6-v2 sentence embeddings: every configuration vs ONNX Runtime ==");
        string models = Directory.CreateDirectory(Path.Combine(cache, "models")).FullName;
        MiniLmReport report = MiniLmDemo.Run(cache, models, new MiniLmOptions(CalibrationSize: calibration,
            SpeedRounds: speed ? 3 : 0, Configs: configs), Console.Out);
        Console.WriteLine();
        Console.Write(MiniLmTable.Text(report));
        Console.WriteLine($"Measured {report.Date:yyyy-MM-dd HH:mm} UTC on {report.Machine}; accuracy against " +
                          $"{MiniLmDemo.OrtName} over {report.Sentences} sentences.");
        MiniLmRow port = report.Rows.Single(r => r.Name == MiniLmConfigs.Float.Name);
        bool matches = port.Metrics.MinCosine >= PortMinCosine;
        Console.WriteLine($"Port check: our fp32 vs ONNX Runtime, minimum cosine {port.Metrics.MinCosine:F7} " +
                          $"({(matches ? "meets" : "MISSES")} the {PortMinCosine} target)");
        var differing = report.Rows.Where(r => r.Reloaded == false).Select(r => r.Name).ToList();
        Console.WriteLine($"Saved and reloaded {report.Rows.Count(r => r.Reloaded is not null)} quantized " +
                          $"configurations (.safetensors + its .quanto_qmap.json) in {models}: " +
                          (differing.Count == 0 ? "every reload gives identical embeddings"
                              : "MISMATCH: " + string.Join(", ", differing)));
        if (!matches || differing.Count > 0) Environment.ExitCode = 1;
        string markdown = Path.Combine(Environment.CurrentDirectory, "quanto-minilm.md");
        File.WriteAllText(markdown, MiniLmTable.Markdown(report));
        string chart = MiniLmChart.Save(report, Path.Combine(Environment.CurrentDirectory, "quanto-minilm.png"));
        Console.WriteLine($"Chart: {chart}; Markdown table: {markdown}");
    }
}
