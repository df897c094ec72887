using System.Globalization;

namespace Quanto.Cli;

/// <summary>Plain-text formatting shared by the commands: byte sizes, shapes and aligned tables.</summary>
public static class TextTable
{
    /// <summary>A byte count for people: "512 B", "1.50 KiB", "3.25 MiB", "1.02 GiB".</summary>
    public static string Bytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        int unit = 0;
        while (Math.Abs(value) >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{bytes} B")
            : string.Create(CultureInfo.InvariantCulture, $"{value:0.00} {units[unit]}");
    }

    /// <summary>A shape as "[256, 512]" ("[]" for a scalar).</summary>
    public static string Shape(IEnumerable<long> shape) =>
        "[" + string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";

    /// <summary>A ratio as "3.94x".</summary>
    public static string Ratio(long before, long after) => after <= 0
        ? "-"
        : string.Create(CultureInfo.InvariantCulture, $"{(double)before / after:0.00}x");

    /// <summary>Column widths that fit the header and every row.</summary>
    public static int[] Widths(IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows)
    {
        int[] widths = header.Select(h => h.Length).ToArray();
        foreach (IReadOnlyList<string> row in rows)
        {
            for (int i = 0; i < widths.Length && i < row.Count; i++) widths[i] = Math.Max(widths[i], row[i].Length);
        }
        return widths;
    }

    /// <summary>One row, columns separated by two spaces; columns listed in <paramref name="rightAligned"/> are
    /// right-aligned (numbers), the last column is not padded.</summary>
    public static string Row(IReadOnlyList<string> cells, int[] widths, params int[] rightAligned)
    {
        var parts = new string[cells.Count];
        for (int i = 0; i < cells.Count; i++)
        {
            bool last = i == cells.Count - 1;
            int width = i < widths.Length ? widths[i] : 0;
            parts[i] = rightAligned.Contains(i) ? cells[i].PadLeft(width) : last ? cells[i] : cells[i].PadRight(width);
        }
        return string.Join("  ", parts).TrimEnd();
    }

    /// <summary>Writes a whole table: header, a rule, the rows.</summary>
    public static void Write(TextWriter writer, IReadOnlyList<string> header, IReadOnlyList<IReadOnlyList<string>> rows,
        params int[] rightAligned)
    {
        int[] widths = Widths(header, rows);
        writer.WriteLine(Row(header, widths, rightAligned));
        writer.WriteLine(new string('-', widths.Sum() + 2 * (widths.Length - 1)));
        foreach (IReadOnlyList<string> row in rows) writer.WriteLine(Row(row, widths, rightAligned));
    }
}
