using Microsoft.CodeAnalysis;
using NUnit.Framework;

namespace Quanto.Tests.Generators;

/// <summary>Each diagnostic fires on its bad sample, with its severity and a message naming the member, and no
/// other diagnostic fires there; the good samples report none (see <see cref="SnapshotTests"/>).</summary>
[TestFixture]
public sealed class DiagnosticTests
{
    private const string Usings = """
        using TorchSharp.Modules;
        using static Quanto.QType;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;
        using static TorchSharp.torch.nn.functional;

        namespace Bad;

        """;

    private static IEnumerable<TestCaseData> BadSamples()
    {
        yield return Case("QNT001", DiagnosticSeverity.Error, "'Net'", """
            [Quanto.Quantize(Weights = QInt8)]
            public class Net : Module<Tensor, Tensor>
            {
                private readonly Linear fc = Linear(4, 4);
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x) => fc.forward(x);
            }
            """);
        yield return Case("QNT002", DiagnosticSeverity.Error, "'Net'", """
            [Quanto.Quantize(Weights = QInt8)]
            public partial class Net : Module<Tensor, Tensor>
            {
                private readonly Linear fc = Linear(4, 4);
                public Net() : base("Net") => RegisterComponents();
            }
            """);
        yield return Case("QNT003", DiagnosticSeverity.Error, "'norm'", """
            [Quanto.Quantize(Weights = QInt8)]
            public partial class Net : Module<Tensor, Tensor>
            {
                [Quanto.Quantize(Weights = QInt4)]
                private readonly BatchNorm1d norm = BatchNorm1d(4);
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x) => norm.forward(x);
            }
            """);
        yield return Case("QNT004", DiagnosticSeverity.Error, "Group = 100 on 'fc'", """
            [Quanto.Quantize(Weights = QInt4)]
            public partial class Net : Module<Tensor, Tensor>
            {
                [Quanto.Quantize(Group = 100)]
                private readonly Linear fc = Linear(256, 4);
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x) => fc.forward(x);
            }
            """);
        yield return Case("QNT005", DiagnosticSeverity.Warning, "Group = 64 on 'Net'", """
            [Quanto.Quantize(Weights = QInt8, Group = 64)]
            public partial class Net : Module<Tensor, Tensor>
            {
                private readonly Linear fc = Linear(4, 4);
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x) => fc.forward(x);
            }
            """);
        yield return Case("QNT006", DiagnosticSeverity.Error, "Activations = QInt4 on 'fc'", """
            [Quanto.Quantize(Weights = QInt8)]
            public partial class Net : Module<Tensor, Tensor>
            {
                [Quanto.Quantize(Activations = QInt4)]
                private readonly Linear fc = Linear(4, 4);
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x) => fc.forward(x);
            }
            """);
        yield return Case("QNT007", DiagnosticSeverity.Warning, "'fc2'", """
            [Quanto.Quantize(Weights = QInt8)]
            public partial class Net : Module<Tensor, Tensor>
            {
                private readonly Linear fc1 = Linear(4, 4);
                private readonly Linear fc2 = Linear(4, 4);
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x) => Twice(fc2, fc1.forward(x));
                private static Tensor Twice(Module<Tensor, Tensor> layer, Tensor x) => layer.forward(layer.forward(x));
            }
            """);
        yield return Case("QNT008", DiagnosticSeverity.Error, "'Net'", """
            [Quanto.Quantize(Weights = QInt8)]
            public partial class Net
            {
                public Tensor forward(Tensor x) => x;
            }
            """);
    }

    private const string DisposeSample = """
        [Quanto.Quantize(Weights = QInt8)]
        public partial class Net : Module<Tensor, Tensor>
        {
            private readonly Linear fc = Linear(4, 4);
            public Net() : base("Net") => RegisterComponents();
            public override Tensor forward(Tensor x) => fc.forward(x);
            protected override void Dispose(bool disposing)
            {
                BODY
                base.Dispose(disposing);
            }
        }
        """;

    [Test]
    public void A_user_Dispose_override_without_DisposeQuantized_is_flagged_and_left_alone()
    {
        var (driver, output, diagnostics) = GeneratorHarness.Run(GeneratorHarness.Compile(
            [new("Bad", Usings + DisposeSample.Replace("BODY", "System.Console.WriteLine(disposing);"))]));
        Assert.That(diagnostics.Select(d => d.Id), Is.EqualTo(new[] { "QNT009" }), string.Join("\n", diagnostics));
        Assert.That(diagnostics[0].Severity, Is.EqualTo(DiagnosticSeverity.Warning));
        Assert.That(diagnostics[0].GetMessage(), Does.Contain("'Net'").And.Contain("DisposeQuantized()"));
        string generated = driver.GetRunResult().GeneratedTrees.Single().ToString();
        Assert.That(generated, Does.Contain("public void DisposeQuantized()"));
        Assert.That(generated, Does.Not.Contain("void Dispose(bool"), "the user's override stays the only one");
        Assert.That(GeneratorHarness.Problems(output).Where(d => d.Id != "QNT009"), Is.Empty, "it compiles");
    }

    [Test]
    public void A_user_Dispose_override_that_calls_DisposeQuantized_is_not_flagged()
    {
        var (_, output, diagnostics) = GeneratorHarness.Run(GeneratorHarness.Compile(
            [new("Good", Usings + DisposeSample.Replace("BODY", "if (disposing) DisposeQuantized();"))]));
        Assert.That(diagnostics, Is.Empty);
        Assert.That(GeneratorHarness.Problems(output), Is.Empty, "it compiles");
    }

    private static TestCaseData Case(string id, DiagnosticSeverity severity, string named, string source) =>
        new TestCaseData(id, severity, named, Usings + source).SetName($"{id} fires on its bad sample");

    [TestCaseSource(nameof(BadSamples))]
    public void Diagnostic_fires_alone_on_its_sample(string id, DiagnosticSeverity severity, string named, string source)
    {
        var (_, _, diagnostics) = GeneratorHarness.Run(GeneratorHarness.Compile([new("Bad", source)]));
        Assert.That(diagnostics.Select(d => d.Id), Is.EqualTo(new[] { id }), string.Join("\n", diagnostics));
        Diagnostic diagnostic = diagnostics[0];
        Assert.That(diagnostic.Severity, Is.EqualTo(severity));
        Assert.That(diagnostic.GetMessage(), Does.Contain(named));
        // Pipeline models carry file + span, not the tree: the location is external but points into the file.
        Assert.That(diagnostic.Location.GetLineSpan().Path, Is.EqualTo("Bad.cs"));
        Assert.That(diagnostic.Location.GetLineSpan().StartLinePosition.Line, Is.GreaterThan(6));
    }

    [Test]
    public void Unfollowed_use_stays_float_in_ForwardQuantized()
    {
        string source = BadSamples().Single(c => (string)c.Arguments[0]! == "QNT007").Arguments[3]!.ToString()!;
        var (driver, output, _) = GeneratorHarness.Run(GeneratorHarness.Compile([new("Bad", source)]));
        string generated = driver.GetRunResult().GeneratedTrees.Single().ToString();
        Assert.That(generated, Does.Contain("var fc1Input = _fc1Quantized.InputStub(x);"));
        Assert.That(generated, Does.Contain("return Twice(fc2, fc1Output);"));
        Assert.That(GeneratorHarness.Problems(output).Where(d => d.Id != "QNT007"), Is.Empty);
    }

    [Test]
    public void Every_descriptor_is_listed_in_the_release_notes()
    {
        string notes = File.ReadAllText(Path.Combine(GeneratorHarness.SourceFolder(), "..", "..",
            "Quanto.Generators", "AnalyzerReleases.Unshipped.md"));
        foreach (DiagnosticDescriptor descriptor in Quanto.Generators.DiagnosticDescriptors.All)
            Assert.That(notes, Does.Contain($"{descriptor.Id} | {descriptor.Category} | {descriptor.DefaultSeverity}"));
    }
}
