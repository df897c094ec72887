using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests;

/// <summary>The README's QEmbedding / QConv1d / report examples, verbatim, with the report they print.</summary>
public sealed class ReadmeBlocksExampleTests
{
    [Test]
    public void EmbeddingAndReportExampleRunsAndPrintsTheReadmesReport()
    {
        // --- README: embedding tables ---
        var model = Sequential(("embed_tokens", Embedding(1000, 256)), ("proj", Linear(256, 160)),
            ("head", Linear(160, 10)));
        QuantizationReport report = Quantizer.Quantize(model, weights: QType.QInt4, embeddings: true);
        Console.WriteLine(report);
        Quantizer.Freeze(model);
        Tensor vectors = model.forward(tensor(new long[] { 1, 5, 999 }));   // decodes 3 rows, not the table
        // --- end ---

        Assert.That(report.ToString().Split(Environment.NewLine), Is.EqualTo(new[]
        {
            "3 module(s) quantized, 0 left float",
            "  embed_tokens: Embedding -> weights qint4, group 128, 4.50 bits/weight, 144,000 bytes, activations none",
            "  proj: Linear -> weights qint4, group 128, 4.50 bits/weight, 23,040 bytes, activations none",
            "  head: Linear -> weights qint4, group 32 (fallback from 128), 6.00 bits/weight, 1,200 bytes, " +
            "activations none",
            "Quantized weights: 1,194,240 -> 168,240 bytes (7.10x smaller)",
        }));
        Assert.That(vectors.shape, Is.EqualTo(new long[] { 3, 10 }));
        vectors.Dispose();
        model.Dispose();
    }

    [Test]
    public void Conv1dExampleRuns()
    {
        // --- README: Conv1d ---
        var audio = Sequential(("conv", Conv1d(80, 256, 5, padding: 2, padding_mode: PaddingModes.Reflect)),
            ("act", GELU()));
        Quantizer.Quantize(audio, weights: QType.QInt8);   // conv -> QConv1d, reflect padding kept
        // --- end ---

        Assert.That(audio.named_modules().First().module, Is.TypeOf<Quanto.Nn.QConv1d>());
        using Tensor y = audio.forward(rand(2, 80, 50));
        Assert.That(y.shape, Is.EqualTo(new long[] { 2, 256, 50 }));
        audio.Dispose();
    }
}
