using NUnit.Framework;
using Quanto.Demo.MiniLm;
using Quanto.Serialization;

namespace Quanto.Tests.Demo;

/// <summary>
/// The MiniLM demo on a slice of the corpus, from an empty cache: the package's ONNX converted into a Hugging Face
/// checkpoint, our fp32 port against ONNX Runtime's embeddings, every configuration through the library, each saved
/// and rebuilt from its file. No timing (speed lives in the demo's table).
/// </summary>
[TestFixture]
[Category("Demo")]
[NonParallelizable]
public sealed class MiniLmDemoTests
{
    private string _cache = "";
    private MiniLmReport _report = null!;

    [OneTimeSetUp]
    public void RunOnASlice()
    {
        _cache = Path.Combine(Path.GetTempPath(), "quanto-minilm-" + Guid.NewGuid().ToString("N"));
        string models = Directory.CreateDirectory(Path.Combine(_cache, "models")).FullName;
        _report = MiniLmDemo.Run(_cache, models, new MiniLmOptions(CorpusSize: 32, CalibrationSize: 8, SpeedRounds: 0),
            TextWriter.Null);
    }

    [OneTimeTearDown]
    public void CleanUp()
    {
        if (Directory.Exists(_cache)) Directory.Delete(_cache, recursive: true);
    }

    [Test]
    public void TheCheckpointHasBertModelsNamesAndPyTorchLayouts()
    {
        string folder = Path.Combine(_cache, MiniLmPackage.CheckpointName);
        Assert.That(File.Exists(Path.Combine(folder, "config.json")) && File.Exists(Path.Combine(folder, "vocab.txt")));
        using SafetensorsFile file = SafetensorsFile.Open(Path.Combine(folder, "model.safetensors"));
        // transformers' BertModel: 5 embedding tensors, 16 per layer, the pooler's 2.
        string[] layer =
        [
            "attention.self.query.weight", "attention.self.query.bias", "attention.self.key.weight",
            "attention.self.key.bias", "attention.self.value.weight", "attention.self.value.bias",
            "attention.output.dense.weight", "attention.output.dense.bias", "attention.output.LayerNorm.weight",
            "attention.output.LayerNorm.bias", "intermediate.dense.weight", "intermediate.dense.bias",
            "output.dense.weight", "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias",
        ];
        string[] expected =
        [
            "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
            "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias",
            .. Enumerable.Range(0, 6).SelectMany(i => layer.Select(k => $"encoder.layer.{i}.{k}")),
            "pooler.dense.weight", "pooler.dense.bias",
        ];
        Assert.That(file.Entries.Select(e => e.Name), Is.EquivalentTo(expected));
        // PyTorch's Linear layout (out, in): the MatMul weights were transposed back.
        Assert.That(file.Entry("encoder.layer.0.intermediate.dense.weight").Shape,
            Is.EqualTo(new long[] { 1536, 384 }));
        Assert.That(file.Entry("encoder.layer.5.output.dense.weight").Shape, Is.EqualTo(new long[] { 384, 1536 }));
        string config = File.ReadAllText(Path.Combine(folder, "config.json"));
        // all-MiniLM-L6-v2's published config: 6 layers, 12 heads, hidden 384, FFN 1536, eps 1e-12.
        Assert.That(config, Does.Contain("\"num_hidden_layers\": 6").And.Contain("\"num_attention_heads\": 12")
            .And.Contain("\"hidden_size\": 384").And.Contain("\"intermediate_size\": 1536")
            .And.Contain("\"layer_norm_eps\": 1E-12").And.Contain("\"model_type\": \"bert\""));
    }

    [Test]
    public void ThePortMatchesOnnxRuntime()
    {
        MiniLmRow port = _report.Rows.Single(r => r.Name == MiniLmConfigs.Float.Name);
        Assert.That(port.Metrics.MinCosine, Is.GreaterThanOrEqualTo(MiniLmProgram.PortMinCosine));
        Assert.That(port.Metrics.NeighbourAgreement, Is.EqualTo(1));
        Assert.That(port.BitsPerWeight, Is.EqualTo(32));
    }

    [Test]
    public void EveryConfigurationRunsAndReloadsIdentically()
    {
        Assert.That(_report.Rows.Select(r => r.Name),
            Is.EqualTo(MiniLmConfigs.All.Select(c => c.Name).Prepend(MiniLmDemo.OrtName)));
        Assert.That(_report.Rows.Skip(2).Select(r => r.Reloaded), Is.All.True);
        MiniLmRow fp32 = _report.Rows[1];
        long floatTables = fp32.Bytes - fp32.NonEmbeddingBytes;
        foreach (MiniLmRow row in _report.Rows.Skip(2))
        {
            Assert.That(row.NonEmbeddingBytes, Is.LessThan(fp32.NonEmbeddingBytes * 0.3), row.Name);
            if (!row.Name.EndsWith("+ embeddings", StringComparison.Ordinal))
                Assert.That(row.Bytes - row.NonEmbeddingBytes, Is.EqualTo(floatTables), $"{row.Name}: tables float");
            Assert.That(row.Metrics.MinCosine, Is.InRange(-1.0, row.Metrics.MeanCosine), row.Name);
            Assert.That(row.Metrics.MeanCosine, Is.LessThan(1.0), $"{row.Name} changes the embeddings");
        }
    }

    [TestCase("w8 + embeddings", 8, 8)]
    [TestCase("w4 HQQ + embeddings", 4, 2 * 32)]
    public void EmbeddingRowsShrinkTheTables(string name, int bits, int overheadBits)
    {
        // The tables: word 30522 x 384, position 512 x 384, token type 2 x 384. int8: a float32 scale per row;
        // int4 g128: a float32 scale and shift per 128 entries (3 groups per row), packed two codes a byte. Each
        // quantized module also holds optimum-quanto's input_scale and output_scale buffers (float32 scalars).
        long[] rows = [30522, 512, 2];
        double expected = rows.Sum(r => r * (384.0 * bits / 8 + (bits == 8 ? 4 : 3 * overheadBits / 8.0)) + 2 * 4);
        MiniLmRow row = _report.Rows.Single(r => r.Name == name);
        MiniLmRow weightsOnly = _report.Rows.Single(r => r.Name == (bits == 8 ? "w8" : "w4 g128 HQQ"));
        Assert.That(row.Bytes - row.NonEmbeddingBytes, Is.EqualTo(expected).Within(0.5));
        Assert.That(row.NonEmbeddingBytes, Is.EqualTo(weightsOnly.NonEmbeddingBytes));
        Assert.That(row.Metrics.MeanCosine, Is.LessThan(weightsOnly.Metrics.MeanCosine), "the tables' rounding shows");
    }

    [TestCase("w8 dyn-a8", "w8")]
    [TestCase("w4 g128 HQQ dyn-a8", "w4 g128 HQQ")]
    public void DynamicActivationRowsRunTheInt8ActivationPath(string name, string weightsOnly)
    {
        // Same file as the weight-only row (a run-time mode): same bytes, but the int8 activations move the
        // embeddings, and the reload (checked above) had to set the mode again to match.
        MiniLmRow row = _report.Rows.Single(r => r.Name == name);
        MiniLmRow reference = _report.Rows.Single(r => r.Name == weightsOnly);
        Assert.That(row.Bytes, Is.EqualTo(reference.Bytes));
        Assert.That(row.Metrics.MeanCosine, Is.Not.EqualTo(reference.Metrics.MeanCosine));
        Assert.That(row.Metrics.MeanCosine, Is.GreaterThan(0.9), "int8 activations cost little");
    }

    [TestCase("w8", 8.0625)]
    [TestCase("w4 g128 Max", 4.5)]
    [TestCase("w2 g128 HQQ", 2.5)]
    public void BitsPerWeightCountScalesAndShifts(string name, double bits)
    {
        // Per layer: 4 x 384x384 + 2 x 1536x384 weights. int8: one float32 scale per output row ((4 x 384 + 1536 +
        // 384) x 32 bits over 1,769,472 weights = 0.0625); 2/4-bit: a float32 scale and shift per group.
        Assert.That(_report.Rows.Single(r => r.Name == name).BitsPerWeight, Is.EqualTo(bits).Within(1e-9));
    }

    [TestCase("w8", 0.999)]
    [TestCase("fp8 e4m3fn", 0.99)]
    public void EightBitWeightsKeepTheEmbeddings(string name, double meanCosine) =>
        Assert.That(_report.Rows.Single(r => r.Name == name).Metrics.MeanCosine, Is.GreaterThan(meanCosine));
}
