using ScottPlot;

namespace Quanto.Demo.MiniLm;

/// <summary>The MiniLM demo's chart: accuracy against size (left) and speed against ONNX Runtime (right).</summary>
internal static class MiniLmChart
{
    public static string Save(MiniLmReport report, string path)
    {
        var multiplot = new Multiplot();
        multiplot.AddPlots(2);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Columns();
        Plot accuracy = multiplot.GetPlot(0);
        foreach (MiniLmRow row in report.Rows)
        {
            var marker = accuracy.Add.Marker(row.Bytes / 1e6, row.Metrics.MeanCosine);
            marker.LegendText = row.Name;
            marker.MarkerSize = 11;
        }
        accuracy.Title("all-MiniLM-L6-v2: accuracy vs size");
        accuracy.XLabel("model size (MB)");
        accuracy.YLabel("mean cosine to ONNX Runtime fp32");
        accuracy.ShowLegend(Alignment.LowerRight);

        Plot speed = multiplot.GetPlot(1);
        List<MiniLmRow> timed = report.Rows.Where(r => r.Speed is not null).ToList();
        Speed? reference = report.Reference.Speed;
        if (reference is not null)
        {
            var bars = new List<Bar>();
            for (int i = 0; i < timed.Count; i++)
            {
                bars.Add(new Bar { Position = (3 * i) + 0, Value = timed[i].Speed!.Single / reference.Single,
                    FillColor = Colors.SteelBlue });
                bars.Add(new Bar { Position = (3 * i) + 1, Value = timed[i].Speed!.Batched / reference.Batched,
                    FillColor = Colors.DarkOrange });
            }
            speed.Add.Bars(bars);
            speed.Add.HorizontalLine(1, pattern: LinePattern.Dashed);
            speed.Axes.Bottom.SetTicks(timed.Select((_, i) => (3.0 * i) + 0.5).ToArray(),
                timed.Select(r => r.Name).ToArray());
            speed.Axes.Bottom.TickLabelStyle.Rotation = 45;
            speed.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
            speed.Axes.Bottom.MinimumSize = 150; // room for the rotated configuration names
            speed.Axes.Margins(bottom: 0);
            speed.Legend.ManualItems.Add(new LegendItem { LabelText = "batch 1", FillColor = Colors.SteelBlue });
            speed.Legend.ManualItems.Add(new LegendItem { LabelText = "batch 32", FillColor = Colors.DarkOrange });
            speed.ShowLegend(Alignment.UpperRight);
        }
        speed.Title("speed vs ONNX Runtime fp32 (sentences/s ratio)");
        speed.YLabel("x ONNX Runtime fp32");
        multiplot.SavePng(path, 1600, 640);
        return path;
    }
}
