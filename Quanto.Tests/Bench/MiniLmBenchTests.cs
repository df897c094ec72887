using NUnit.Framework;
using Quanto.Bench;
using Quanto.Demo.MiniLm;

namespace Quanto.Tests.Bench;

/// <summary>Quanto.Bench <c>--minilm</c> runs the MiniLM demo's rows (the same objects, so a row the demo gains is
/// benchmarked too), then its own sweep through the demo's recipes.</summary>
[TestFixture]
public sealed class MiniLmBenchTests
{
    [Test]
    public void RowsAreTheDemosQuantizedRowsThenTheSweep()
    {
        List<MiniLmConfig> rows = MiniLmBench.Rows().ToList();
        MiniLmConfig[] demo = [.. MiniLmConfigs.All.Where(c => c.IsQuantized), .. MiniLmConfigs.Optional];
        Assert.That(rows.Take(demo.Length), Is.EqualTo(demo).Using<MiniLmConfig>(ReferenceEquals));
        Assert.That(rows.Skip(demo.Length).Select(r => r.Name), Does.Contain("qint2 g32 gptq act-order")
            .And.Contain("qint4 g128 awq+gptq").And.Contain("plan 3.0 bits no-GPTQ"));
        Assert.That(rows, Has.All.Matches<MiniLmConfig>(r => r.IsQuantized));
        Assert.That(rows.Select(r => r.Name), Is.Unique, "--only selects rows by name");
    }

    [Test]
    public void MiniLmOptionTakesNoAssemblyPath()
    {
        BenchOptions options = BenchOptions.Parse(["--minilm", "--text", "/tmp/texts", "--only", "qint2"]);
        Assert.That(options.MiniLm, Is.True);
        Assert.That(options.TextFolder, Is.EqualTo("/tmp/texts"));
        Assert.That(options.Only, Is.EqualTo("qint2"));
    }
}
