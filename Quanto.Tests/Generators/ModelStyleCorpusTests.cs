using Microsoft.CodeAnalysis;
using NUnit.Framework;

namespace Quanto.Tests.Generators;

/// <summary>
/// Every model style of <see cref="ModelStyleCorpus"/> gets exactly its expected generator diagnostics, and wherever
/// the diagnostics let generation through, the generated code compiles with no compiler error or warning (the
/// generator's own warnings aside, which say what stays float).
/// </summary>
[TestFixture]
public sealed class ModelStyleCorpusTests
{
    private static IEnumerable<TestCaseData> Cases() =>
        ModelStyleCorpus.Entries().Select(e => new TestCaseData(e.Name).SetName($"Corpus: {e.Name}"));

    [TestCaseSource(nameof(Cases))]
    public void Generated_code_compiles_wherever_the_diagnostics_let_it_through(string name)
    {
        var (_, expected, source) = ModelStyleCorpus.Entries().Single(e => e.Name == name);
        var (driver, output, diagnostics) = GeneratorHarness.Run(GeneratorHarness.Compile(
            [new("Corpus", ModelStyleCorpus.Usings + source)]));

        Assert.That(diagnostics.Select(d => d.Id), Is.EqualTo(expected), string.Join("\n", diagnostics));
        Assert.That(diagnostics.Select(d => d.Location.GetLineSpan().Path), Is.All.EqualTo("Corpus.cs"));
        bool stopped = diagnostics.Any(d => d.Severity == DiagnosticSeverity.Error);
        Assert.That(driver.GetRunResult().GeneratedTrees, stopped ? Is.Empty : Is.Not.Empty);
        Assert.That(GeneratorHarness.Problems(output).Where(d => !d.Id.StartsWith("QNT", StringComparison.Ordinal))
            .Select(d => d.ToString()), Is.Empty, "compiler errors or warnings in or around the generated code");
    }

    [Test]
    public void The_diagnostics_say_what_stays_float_and_name_the_field()
    {
        var messages = ModelStyleCorpus.Entries()
            .SelectMany(e => GeneratorHarness.Run(GeneratorHarness.Compile(
                [new("Corpus", ModelStyleCorpus.Usings + e.Source)])).Diagnostics)
            .ToLookup(d => d.Id, d => d.GetMessage());
        Assert.That(messages["QNT013"].First(), Does.Contain("'body'").And.Contain("stay float"));
        Assert.That(messages["QNT012"].Single(), Does.Contain("'inner'").And.Contain("stays float")
            .And.Contain("assigned values of type Module<Tensor, Tensor>"));
        Assert.That(messages["QNT014"].Single(), Does.Contain("'mlp'").And.Contain("fc: Linear"));
        Assert.That(messages["QNT011"].Single(), Does.Contain("'norm'").And.Contain("BatchNorm1d"));
        Assert.That(messages["QNT015"].First(), Does.Contain("'relu'").And.Contain("as written"));
        Assert.That(messages["QNT007"], Has.Some.Contain("'Embed'").And.Some.Contain("'Width'"));
        Assert.That(messages["QNT010"], Has.All.Contain("no layer the generator quantizes"));
    }
}
