using System.Globalization;
using NUnit.Framework;
using Quanto.Bench;

namespace Quanto.Tests.Bench;

/// <summary>Quanto.Bench <c>--attention</c>: the option, and a quick run's table (16 and 256 cached positions), every
/// time a positive number and the ratio the one the row's times give.</summary>
[TestFixture]
[NonParallelizable] // redirects Console
public sealed class AttentionBenchTests
{
    [Test]
    public void AttentionOptionSelectsTheAttentionRows()
    {
        BenchOptions options = BenchOptions.Parse(["--attention", "--quick"]);
        Assert.That(options.Attention, Is.True);
        Assert.That(options.Quick, Is.True);
        Assert.That(BenchOptions.Parse([]).Attention, Is.False);
    }

    [Test]
    public void QuickRunPrintsARowPerCacheLength()
    {
        TextWriter original = Console.Out;
        using var captured = new StringWriter(CultureInfo.InvariantCulture);
        Console.SetOut(captured);
        try
        {
            AttentionBench.Run(quick: true);
        }
        finally
        {
            Console.SetOut(original);
        }
        string[][] rows = captured.ToString().Split('\n')
            .Where(line => line.StartsWith("| 16 |", StringComparison.Ordinal) ||
                           line.StartsWith("| 256 |", StringComparison.Ordinal))
            .Select(line => line.Trim().Trim('|').Split('|').Select(c => c.Trim()).ToArray())
            .ToArray();
        Assert.That(rows.Select(r => r[0]), Is.EqualTo(new[] { "16", "256" }), captured.ToString());
        foreach (string[] row in rows)
        {
            double[] times = row.Skip(1).Take(4).Select(c => double.Parse(c, CultureInfo.InvariantCulture)).ToArray();
            Assert.That(times, Has.All.GreaterThan(0), string.Join(" | ", row));
            double ratio = double.Parse(row[5].TrimEnd('x'), CultureInfo.InvariantCulture);
            double expected = Math.Min(times[2], times[3]) / times[0];
            // The ratio is printed to 0.01 and the times to 0.1 us (up to ~2% of a 5 us time).
            Assert.That(ratio, Is.EqualTo(expected).Within(0.005 + 0.02 * expected),
                "one pass vs the faster libtorch");
        }
    }
}
