using MyModels;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace Quanto.Tests.Readme;

/// <summary>The README's examples, as written there: the [Quantize] class (ReadmeGeneratorExample.cs, compiled by the
/// generator in this project) and its use run here, and each README block is checked to be these lines.</summary>
[TestFixture]
public sealed class ReadmeGeneratorExampleTests : TestSupport.TempFolderTests
{
    [Test]
    public void GeneratorExampleRuns()
    {
        using IDisposable noGrad = no_grad();
        Tensor samples = rand(16, 64), x = rand(8, 64);
        string folder = Folder;
        // --- README: generator usage ---
        var model = new Mlp();
        model.eval();
        model.Quantize();                             // quantized twins of fc1, fc2 and head (dynamic mode)
        using (model.Calibrate(momentum: 0.9))        // records activation ranges (when the attributes quantize them)
            model.ForwardQuantized(samples);
        model.Freeze();                               // int4 / int8 weights replace the float ones; float memory is released
        Tensor y = model.ForwardQuantized(x);
        model.SaveQuantized(Path.Combine(folder, "mlp.qnt"));   // Group = 32 needs .qnt (.safetensors files re-derive 128)

        using var loaded = new Mlp();
        loaded.LoadQuantized(Path.Combine(folder, "mlp.qnt"));  // a fresh instance builds its twins from the file's map
        loaded.to(ScalarType.BFloat16);               // .to() in any order: before or after Quantize, Freeze, LoadQuantized
        Tensor z = loaded.ForwardQuantized(x.to(ScalarType.BFloat16));
        // --- end ---

        Assert.That(model.QuantizedModules().Select(m => (m.Path, m.WeightQType)), Is.EqualTo(new[]
        {
            ("fc1", (QType?)QType.QInt4), ("fc2", QType.QInt4), ("head", QType.QInt8),
        }), "the helper's layers are quantized; norm stays float");
        Assert.That(y.shape, Is.EqualTo(new long[] { 8, 10 }));
        Assert.That(z.dtype, Is.EqualTo(ScalarType.BFloat16));
        Similarity(z.to(ScalarType.Float32), y);
        model.Dispose();
    }

    [Test]
    public void The_same_class_takes_the_eager_path()
    {
        using IDisposable noGrad = no_grad();
        using var model = new Mlp();
        QuantizationReport report = Quantizer.Quantize(model, QType.QInt4, exclude: ["norm"], groupSize: 32);
        Assert.That(report.Quantized.Select(q => q.Path), Is.EqualTo(new[] { "fc1", "fc2", "head" }));
        Assert.That(report.Skipped, Is.Empty, "Module<Tensor, Tensor> fields can hold the quantized modules");
    }

    [TestCase("ReadmeExampleTests.cs", "eager workflow", "var model = Sequential((\"fc1\", Linear(784, 256)), " +
        "(\"act\", ReLU()), (\"fc2\", Linear(256, 10)));")]
    [TestCase("Readme/ReadmeGeneratorExample.cs", "generator class", "using Quanto;")]
    [TestCase("Readme/ReadmeGeneratorExampleTests.cs", "generator usage", "var model = new Mlp();")]
    public void The_README_shows_these_lines(string file, string region, string firstLine)
    {
        IReadOnlyList<string> code = ReadmeText.Region(file, region);
        IReadOnlyList<string> tail = code.SkipWhile(l => l != firstLine).ToList();
        Assert.That(tail, Is.Not.Empty, $"{file} region '{region}' has no line '{firstLine}'");
        Assert.That(ReadmeText.Shows(tail), Is.True,
            $"README.md does not show, in one code block, these lines of {file}:\n{string.Join("\n", tail)}");
    }

    /// <summary>bf16 differs from float32 by its rounding only.</summary>
    private static void Similarity(Tensor actual, Tensor expected)
    {
        double cosine = nn.functional.cosine_similarity(actual.flatten(), expected.flatten(), 0).item<float>();
        Assert.That(cosine, Is.GreaterThan(0.999));
    }
}
