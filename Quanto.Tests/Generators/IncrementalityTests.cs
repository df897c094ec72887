using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using NUnit.Framework;
using Quanto.Generators;

namespace Quanto.Tests.Generators;

/// <summary>An edit outside the annotated classes leaves the pipeline's outputs cached: models hold no symbols or
/// syntax, so they compare equal and nothing is re-emitted.</summary>
[TestFixture]
public sealed class IncrementalityTests
{
    [Test]
    public void Unrelated_edit_leaves_the_steps_cached()
    {
        var sources = GeneratorHarness.Samples().ToList();
        sources.Add(new("Unrelated", "namespace Other; public static class Helper { public static int One() => 1; }"));
        CSharpCompilation compilation = GeneratorHarness.Compile(sources);
        var (driver, _, _) = GeneratorHarness.Run(compilation);

        SyntaxTree unrelated = compilation.SyntaxTrees.Single(t => t.FilePath == "Unrelated.cs");
        SyntaxTree edited = unrelated.WithChangedText(Microsoft.CodeAnalysis.Text.SourceText.From(
            "namespace Other; public static class Helper { public static int Two() => 2; }"));
        var (rerun, _, _) = GeneratorHarness.Run(compilation.ReplaceSyntaxTree(unrelated, edited), driver);

        GeneratorRunResult result = rerun.GetRunResult().Results.Single();
        foreach (string step in new[] { QuantizeGenerator.Steps.Parse, QuantizeGenerator.Steps.Emit })
        {
            var reasons = result.TrackedSteps[step].SelectMany(s => s.Outputs).Select(o => o.Reason).ToList();
            Assert.That(reasons, Is.Not.Empty, step);
            Assert.That(reasons, Is.All.EqualTo(IncrementalStepRunReason.Cached).Or.EqualTo(IncrementalStepRunReason.Unchanged),
                step);
        }
        Assert.That(result.TrackedOutputSteps.SelectMany(s => s.Value).SelectMany(s => s.Outputs)
            .Select(o => o.Reason), Is.All.EqualTo(IncrementalStepRunReason.Cached));
    }

    [Test]
    public void Editing_an_annotated_class_regenerates_it()
    {
        CSharpCompilation compilation = GeneratorHarness.Compile(GeneratorHarness.Samples());
        var (driver, _, _) = GeneratorHarness.Run(compilation);
        SyntaxTree mlp = compilation.SyntaxTrees.Single(t => t.FilePath == "Mlp.cs");
        SyntaxTree edited = mlp.WithChangedText(Microsoft.CodeAnalysis.Text.SourceText.From(
            mlp.ToString().Replace("relu(fc1.forward(x))", "gelu(fc1.forward(x))")));
        var (rerun, _, _) = GeneratorHarness.Run(compilation.ReplaceSyntaxTree(mlp, edited), driver);
        string generated = rerun.GetRunResult().GeneratedTrees.Single(t => t.FilePath.EndsWith("Mlp.Quantized.g.cs"))
            .ToString();
        Assert.That(generated, Does.Contain("_fc2Quantized.InputStub(gelu(fc1Output))"));
    }
}
