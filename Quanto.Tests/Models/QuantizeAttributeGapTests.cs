using Microsoft.CodeAnalysis;
using NUnit.Framework;
using Quanto.Tests.Generators;

namespace Quanto.Tests.Models;

/// <summary>
/// Known gaps (issue 15.1): why Bert and Llama are not [Quantize] classes yet. Each case is the smallest class that
/// shows one gap, compiled with the generator; when the generator closes a gap its case fails, and the models can
/// take the attribute.
/// </summary>
[TestFixture]
public sealed class QuantizeAttributeGapTests
{
    private const string Usings = """
        using System.Collections.Generic;
        using TorchSharp.Modules;
        using static Quanto.QType;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        namespace Gap;

        """;

    /// <summary>The generated <c>Quantize(QType? weights, QType? activations = null, int? groupSize = null, ...)</c>
    /// and a model's own optimum-quanto-style <c>Quantize(QType? weights = QInt8, ..., exclude = null)</c> (Llama's
    /// and Bert's) make every call with only weights / activations ambiguous.</summary>
    [Test]
    public void OwnQuantizeMethodMakesCallsAmbiguous()
    {
        Compilation output = Generate("""
            [Quanto.Quantize]
            public partial class Net : Module<Tensor, Tensor>
            {
                private readonly Module<Tensor, Tensor> fc = Linear(4, 4);
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x) => fc.forward(x);
                public int Quantize(Quanto.QType? weights = QInt8, Quanto.QType? activations = null,
                    IEnumerable<string>? exclude = null) => 0;
            }

            public static class Caller
            {
                public static void Run(Net net) => net.Quantize(QInt4);
            }
            """, out _);

        Assert.That(GeneratorHarness.Problems(output).Select(d => d.Id), Is.EqualTo(new[] { "CS0121" }));
    }

    /// <summary>Weight tying (Llama's tied lm_head: the Linear's weight set to the embedding's) is a use of the layer
    /// outside forward: QNT007, an error under TreatWarningsAsErrors, which <c>#pragma warning disable</c> does not
    /// silence; only [NoQuantize] on the head does, and then ForwardQuantized can never quantize it.</summary>
    [Test]
    public void WeightTyingIsReportedAsUnfollowedUse()
    {
        Generate("""
            [Quanto.Quantize]
            public partial class Net : Module<Tensor, Tensor>
            {
                private readonly Module<Tensor, Tensor> embed = Embedding(8, 4);
                private readonly Module<Tensor, Tensor> head = Linear(4, 8, hasBias: false);
                public Net() : base("Net")
                {
                    RegisterComponents();
                    Tie();
                }
                public override Tensor forward(Tensor x) => head.forward(embed.forward(x));
            #pragma warning disable QNT007
                private void Tie()
                {
                    if (head is Linear l && embed is Embedding { weight: Parameter shared }) l.weight = shared;
                }
            #pragma warning restore QNT007
            }
            """, out IReadOnlyList<Diagnostic> diagnostics);

        Assert.That(diagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning).Select(d => d.Id),
            Is.EqualTo(new[] { "QNT007" }));
    }

    /// <summary>A LayerNorm gets a twin only when the attributes quantize activations, and the run-time override
    /// does not add one: <c>Quantize(weights: QInt8, activations: QInt8)</c> on a weights-only [Quantize] class
    /// leaves BERT's LayerNorms float where the eager <c>Quantizer.Quantize</c> swaps them for QLayerNorm. A class
    /// holding only Embeddings and a LayerNorm (BertEmbeddings) has no layer at all (QNT010).</summary>
    [Test]
    public void WeightsOnlyAttributeGivesLayerNormNoSlot()
    {
        Compilation output = Generate("""
            [Quanto.Quantize]
            public partial class Net : Module<Tensor, Tensor>
            {
                private readonly Module<Tensor, Tensor> fc = Linear(4, 4);
                private readonly Module<Tensor, Tensor> norm = LayerNorm(4);
                public Net() : base("Net") => RegisterComponents();
                public override Tensor forward(Tensor x) => norm.forward(fc.forward(x));
            }

            [Quanto.Quantize]
            public partial class Embeddings : Module<Tensor, Tensor>
            {
                private readonly Module<Tensor, Tensor> words = Embedding(8, 4);
                private readonly Module<Tensor, Tensor> norm = LayerNorm(4);
                public Embeddings() : base("Embeddings") => RegisterComponents();
                public override Tensor forward(Tensor x) => norm.forward(words.forward(x));
            }
            """, out IReadOnlyList<Diagnostic> diagnostics);

        string generated = string.Concat(output.SyntaxTrees.Where(t => t.FilePath.Contains("Gap.Net.Quantized"))
            .Select(t => t.ToString()));
        Assert.That(generated, Does.Contain("_fcQuantized = new("));
        Assert.That(generated, Does.Not.Contain("_normQuantized"));
        Assert.That(diagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning)
            .Select(d => (d.Id, d.GetMessage().Contains("'Embeddings'", StringComparison.Ordinal))),
            Is.EqualTo(new[] { ("QNT010", true) }));
    }

    private static Compilation Generate(string source, out IReadOnlyList<Diagnostic> diagnostics)
    {
        var input = GeneratorHarness.Compile([new KeyValuePair<string, string>("Gap", Usings + source)], "Gap",
            GeneratorHarness.WithInterceptors);
        (_, Compilation output, var reported) = GeneratorHarness.Run(input, GeneratorHarness.Driver(
            GeneratorHarness.WithInterceptors));
        diagnostics = reported;
        return output;
    }
}
