namespace Quanto.Demo;

/// <summary>The demo's chart: test accuracy against model size, one labelled point per configuration.</summary>
internal static class Chart
{
    public static string Save(IReadOnlyList<Result> results, string path)
    {
        var plot = new ScottPlot.Plot();
        foreach (Result r in results)
        {
            double kib = r.Bytes / 1024.0;
            // Several configurations share a size (all 8-bit ones): the legend names the points, not text labels.
            var marker = plot.Add.Marker(kib, r.Accuracy);
            marker.LegendText = r.Config.Name;
            marker.MarkerSize = 12;
        }
        plot.Title("MNIST CNN: test accuracy vs model size (Quanto.NET)");
        plot.XLabel("model size (KiB: weights, scales, biases)");
        plot.YLabel("test accuracy (%)");
        plot.SavePng(path, 900, 560);
        return path;
    }
}
