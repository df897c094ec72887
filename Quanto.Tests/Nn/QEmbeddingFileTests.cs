using System.Text.Json.Nodes;
using NUnit.Framework;
using Quanto.Serialization;
using Quanto.Tests.Serialization;
using Quanto.Tests.TestSupport;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Nn;

/// <summary>Token embedding -> reflect-padded Conv1d -> Linear: the new kinds through Quantizer.Quantize, Freeze,
/// both file formats and Requantize into a fresh model, bit for bit.</summary>
public sealed class QEmbeddingFileTests : TempFolderTests
{
    [TestCase(QType.QInt4, ".safetensors", true)]
    [TestCase(QType.QInt4, ".qnt", true)]
    [TestCase(QType.QInt2, ".safetensors", false)]
    [TestCase(QType.QInt8, ".qnt", false)]
    [TestCase(QType.QFloat8E4M3Fn, ".safetensors", true)]
    public void QuantizedEmbeddingsAndConv1dRoundTrip(QType qtype, string extension, bool frozen)
    {
        using TokenConv model = Seeded.Create(() => new TokenConv());
        QuantizationReport report = Quantizer.Quantize(model, weights: qtype, embeddings: true);
        Assert.That(report.Quantized.Select(q => $"{q.Path}:{q.OriginalType}"),
            Is.EqualTo(new[] { "tokens:Embedding", "conv:Conv1d", "head:Linear" }));
        Assert.That(model.named_modules().Select(m => m.module.GetType().Name),
            Is.EqualTo(new[] { "QEmbedding", "QConv1d", "QLinear" }));
        if (frozen) Quantizer.Freeze(model);
        model.eval();
        using Tensor input = TokenConv.Input();
        byte[] output = ModelCompare.Output(model, input);
        string path = Path.Combine(Folder, "model" + extension);
        QuantizedModel.Save(model, path);

        using TokenConv fresh = Seeded.Create(() => new TokenConv(), seed: 5);
        fresh.eval();
        Assert.That(ModelCompare.Output(fresh, input), Is.Not.EqualTo(output));
        Quantizer.Requantize(fresh, path);
        Assert.That(fresh.named_modules().Select(m => m.module.GetType().Name),
            Is.EqualTo(new[] { "QEmbedding", "QConv1d", "QLinear" }));
        Assert.That(ModelCompare.Snapshot(fresh), Is.EqualTo(ModelCompare.Snapshot(model)));
        Assert.That(ModelCompare.Output(fresh, input), Is.EqualTo(output));
    }

    [Test]
    public void TheFileHoldsTheTableInLinearsKeysAndTheMapNamesIt()
    {
        using TokenConv model = Seeded.Create(() => new TokenConv());
        Quantizer.Quantize(model, weights: QType.QInt4, embeddings: true);
        Quantizer.Freeze(model);
        string path = Path.Combine(Folder, "model.safetensors");
        QuantizedModel.Save(model, path);
        using SafetensorsFile file = SafetensorsFile.Open(path);
        Assert.That(file.Entries.Select(e => e.Name), Is.SupersetOf(new[]
        {
            "tokens.weight._data._data", "tokens.weight._scale", "tokens.weight._shift", "tokens.input_scale",
            "conv.weight._data._data", "conv.bias", "head.weight._data._data",
        }));
        Assert.That(file.Entries.Select(e => e.Name), Has.None.EqualTo("tokens.weight"));
        var map = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "quanto_qmap.json")))!.AsObject();
        Assert.That((string?)map["tokens"]!["weights"], Is.EqualTo("qint4"));
        Assert.That((string?)map["tokens"]!["activations"], Is.EqualTo("none"));
    }

    [Test]
    public void ByDefaultTheTableStaysFloatAndTheFileAsOptimumQuantoWritesIt()
    {
        using TokenConv model = Seeded.Create(() => new TokenConv());
        QuantizationReport report = Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8);
        Assert.That(report.Skipped.Single().Path, Is.EqualTo("tokens"));
        Assert.That(report.Skipped.Single().Reason, Does.Contain("embeddings: true"));
        Quantizer.Freeze(model);
        string path = Path.Combine(Folder, "model.safetensors");
        QuantizedModel.Save(model, path);
        var map = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "quanto_qmap.json")))!.AsObject();
        Assert.That(map.Select(p => p.Key), Is.EqualTo(new[] { "conv", "head" }));
        using SafetensorsFile file = SafetensorsFile.Open(path);
        Assert.That(file.Entries.Single(e => e.Name == "tokens.weight").Shape, Is.EqualTo(new long[] { 50, 32 }));
    }

    /// <summary>tokens: Embedding(50, 32) -> (batch, 32, length) -> conv: Conv1d(32, 16, 3, reflect 1) -> relu ->
    /// mean over length -> head: Linear(16, 4).</summary>
    private sealed class TokenConv : Module<Tensor, Tensor>
    {
        private readonly Module<Tensor, Tensor> tokens;
        private readonly Module<Tensor, Tensor> conv;
        private readonly Module<Tensor, Tensor> head;

        public TokenConv() : base(nameof(TokenConv))
        {
            tokens = Embedding(50, 32);
            conv = Conv1d(32, 16, 3, padding: 1, padding_mode: PaddingModes.Reflect);
            head = Linear(16, 4);
            RegisterComponents();
        }

        public static Tensor Input() => tensor(new long[] { 3, 49, 0, 7, 7, 21, 30, 1, 2, 48, 11, 5 }, [2, 6]);

        public override Tensor forward(Tensor x)
        {
            Tensor h = conv.forward(tokens.forward(x).transpose(1, 2));
            return head.forward(functional.relu(h).mean([2]));
        }
    }
}
