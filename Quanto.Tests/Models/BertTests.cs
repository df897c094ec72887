using NUnit.Framework;
using Quanto.Models.Bert;
using Quanto.Models.HuggingFace;
using Quanto.Serialization;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

public sealed class BertTests : TempFolderTests
{
    [Test]
    public void ForwardEqualsTheReferenceEquations()
    {
        Dictionary<string, Tensor> weights = TinyBert.Weights();
        HfFiles.Write(Folder, TinyBert.Config(), weights);
        using Bert model = Bert.FromHuggingFace(Folder, null, out LoadReport report);
        (Tensor ids, Tensor mask, Tensor types) = TinyBert.Batch();

        using Tensor expected = TinyBert.Reference(weights, ids, mask, types);
        using Tensor actual = model.forward(ids, mask, types);

        Assert.That(actual.dtype, Is.EqualTo(ScalarType.Float32));
        Assert.That(MaxAbs(actual, expected), Is.LessThan(2e-5));
        Assert.That(report.Ignored, Is.EquivalentTo(new[] { "pooler.dense.weight", "pooler.dense.bias" }));
        Assert.That(report.Loaded, Has.Count.EqualTo(weights.Count - 2));
    }

    [Test]
    public void SentenceEmbeddingsAreTheMaskedMeanL2Normalised()
    {
        Dictionary<string, Tensor> weights = TinyBert.Weights();
        HfFiles.Write(Folder, TinyBert.Config(), weights);
        using Bert model = Bert.FromHuggingFace(Folder);
        (Tensor ids, Tensor mask, _) = TinyBert.Batch();

        using Tensor hidden = TinyBert.Reference(weights, ids, mask, zeros_like(ids));
        double[] h = Reference.Values(hidden);
        var expected = new double[2 * TinyBert.Hidden];
        long[] lengths = [6, 4];
        for (int b = 0; b < 2; b++)
        {
            double norm = 0;
            for (int d = 0; d < TinyBert.Hidden; d++)
            {
                double sum = 0;
                for (int t = 0; t < lengths[b]; t++) sum += h[(b * 6 + t) * TinyBert.Hidden + d];
                expected[b * TinyBert.Hidden + d] = sum / lengths[b];
                norm += Math.Pow(sum / lengths[b], 2);
            }
            for (int d = 0; d < TinyBert.Hidden; d++) expected[b * TinyBert.Hidden + d] /= Math.Sqrt(norm);
        }

        using Tensor embeddings = model.SentenceEmbeddings(ids, mask);
        Assert.That(embeddings.shape, Is.EqualTo(new long[] { 2, TinyBert.Hidden }));
        Assert.That(Reference.Values(embeddings), Is.EqualTo(expected).Within(2e-6));
    }

    [TestCase(ScalarType.BFloat16)]
    [TestCase(ScalarType.Float16)]
    public void HalfPrecisionFilesLoadAsFloat32Exactly(ScalarType fileType)
    {
        Dictionary<string, Tensor> weights = TinyBert.Weights();
        HfFiles.Write(Folder, TinyBert.Config(), weights, fileType);
        using Bert model = Bert.FromHuggingFace(Folder);
        foreach ((string key, Tensor value) in model.state_dict())
        {
            using Tensor expected = weights[key].to(fileType).to(ScalarType.Float32);
            Assert.That(value.dtype, Is.EqualTo(ScalarType.Float32), key);
            Assert.That(value.eq(expected).all().item<bool>(), Is.True, key);
        }
    }

    [Test]
    public void DTypeOnRequestRunsInBFloat16()
    {
        Dictionary<string, Tensor> weights = TinyBert.Weights();
        HfFiles.Write(Folder, TinyBert.Config(), weights);
        using Bert model = Bert.FromHuggingFace(Folder, new LoadOptions { DType = ScalarType.BFloat16 });
        (Tensor ids, Tensor mask, Tensor types) = TinyBert.Batch();

        using Tensor actual = model.forward(ids, mask, types);
        using Tensor expected = TinyBert.Reference(weights, ids, mask, types);
        Assert.That(model.parameters().All(p => p.dtype == ScalarType.BFloat16), Is.True);
        Assert.That(actual.dtype, Is.EqualTo(ScalarType.BFloat16));
        Assert.That(Reference.CosineError(actual, expected), Is.LessThan(1e-3));
    }

    [Test]
    public void ShardedCheckpointWithTheTaskModelPrefixLoads()
    {
        Dictionary<string, Tensor> weights = TinyBert.Weights();
        HfFiles.Write(Folder, TinyBert.Config(), weights, shardBytes: 4096, prefix: "bert.");
        Assert.That(Directory.GetFiles(Folder, "model-*.safetensors"), Has.Length.GreaterThan(2));
        using Bert model = Bert.FromHuggingFace(Folder, null, out LoadReport report);
        (Tensor ids, Tensor mask, Tensor types) = TinyBert.Batch();

        using Tensor expected = TinyBert.Reference(weights, ids, mask, types);
        using Tensor actual = model.forward(ids, mask, types);
        Assert.That(MaxAbs(actual, expected), Is.LessThan(2e-5));
        Assert.That(report.Source, Does.EndWith(ShardedSafetensors.IndexFileName));
        Assert.That(report.Ignored, Does.Contain("bert.pooler.dense.weight"));
    }

    [Test]
    public void MissingKeyIsNamed()
    {
        Dictionary<string, Tensor> weights = TinyBert.Weights();
        weights.Remove("encoder.layer.1.intermediate.dense.weight");
        HfFiles.Write(Folder, TinyBert.Config(), weights);
        var e = Assert.Throws<QuantoFormatException>(() => Bert.FromHuggingFace(Folder))!;
        Assert.That(e.Message, Does.Contain("model.safetensors"));
        Assert.That(e.Message, Does.Contain("missing key 'encoder.layer.1.intermediate.dense.weight' (shape [24, 16])"));
    }

    [Test]
    public void WrongShapeNamesTheKeyAndBothShapes()
    {
        Dictionary<string, Tensor> weights = TinyBert.Weights();
        weights["encoder.layer.0.attention.self.key.weight"] = zeros(16, 8);
        HfFiles.Write(Folder, TinyBert.Config(), weights);
        var e = Assert.Throws<QuantoFormatException>(() => Bert.FromHuggingFace(Folder))!;
        Assert.That(e.Message, Does.Contain("'encoder.layer.0.attention.self.key.weight' in model.safetensors"));
        Assert.That(e.Message, Does.Contain("the file holds [16, 8], the model (from config.json) expects [16, 16]"));
    }

    [Test]
    public void UnknownModelTypeIsRefused()
    {
        var config = TinyBert.Config();
        config["model_type"] = "roberta";
        HfFiles.Write(Folder, config, TinyBert.Weights());
        var e = Assert.Throws<QuantoFormatException>(() => Bert.FromHuggingFace(Folder))!;
        Assert.That(e.Message, Does.Contain("config.json"));
        Assert.That(e.Message, Does.Contain("model_type is 'roberta'; Bert loads model_type 'bert'"));
    }

    [Test]
    public void TruncatedShardNamesTheFileAndTheTensor()
    {
        HfFiles.Write(Folder, TinyBert.Config(), TinyBert.Weights(), shardBytes: 4096);
        string last = Directory.GetFiles(Folder, "model-*.safetensors").Order().Last();
        HfFiles.Truncate(last, 100);
        var e = Assert.Throws<QuantoFormatException>(() => Bert.FromHuggingFace(Folder))!;
        Assert.That(e.FilePath, Is.EqualTo(last));
        Assert.That(e.Message, Does.Match("tensor '[^']+': data_offsets .* run past the end .*truncated"));
    }

    [Test]
    public void UnexpectedKeysAreAnErrorUnlessNotStrict()
    {
        Dictionary<string, Tensor> weights = TinyBert.Weights();
        weights["encoder.layer.2.output.dense.weight"] = zeros(4, 4);
        HfFiles.Write(Folder, TinyBert.Config(), weights);
        var e = Assert.Throws<QuantoFormatException>(() => Bert.FromHuggingFace(Folder))!;
        Assert.That(e.Message, Does.Contain("1 unexpected key(s) the model does not use: " +
                                            "'encoder.layer.2.output.dense.weight'"));

        using Bert model = Bert.FromHuggingFace(Folder, new LoadOptions { Strict = false }, out LoadReport report);
        Assert.That(report.Unexpected, Is.EqualTo(new[] { "encoder.layer.2.output.dense.weight" }));
    }

    [Test]
    public void BadInputsAreRefusedBeforeLibtorchSeesThem()
    {
        HfFiles.Write(Folder, TinyBert.Config(), TinyBert.Weights());
        using Bert model = Bert.FromHuggingFace(Folder);
        Tensor ids = tensor(new long[,] { { 2, 60 } });
        var e = Assert.Throws<ArgumentException>(() => model.SentenceEmbeddings(ids, ones_like(ids)))!;
        Assert.That(e.Message, Does.Contain("input_ids hold values in [2, 60]; they must lie in [0, 50)"));
        Tensor longer = zeros(1, 21, dtype: ScalarType.Int64);
        Assert.Throws<ArgumentException>(() => model.SentenceEmbeddings(longer, ones_like(longer)));
    }

    [Test]
    public void EagerQuantizeSwapsEveryLinear()
    {
        Dictionary<string, Tensor> weights = TinyBert.Weights();
        HfFiles.Write(Folder, TinyBert.Config(), weights);
        using Bert model = Bert.FromHuggingFace(Folder);
        (Tensor ids, Tensor mask, Tensor types) = TinyBert.Batch();

        QuantizationReport report = Quantizer.Quantize(model, weights: QType.QInt8);
        Quantizer.Freeze(model);
        using Tensor expected = TinyBert.Reference(weights, ids, mask, types);
        using Tensor actual = model.forward(ids, mask, types);

        Assert.That(report.Quantized, Has.Count.EqualTo(TinyBert.Layers * 6));
        Assert.That(report.Quantized.Select(q => q.Path), Does.Contain("encoder.layer.1.attention.self.query"));
        Assert.That(Reference.CosineError(actual, expected), Is.LessThan(1e-4));
    }

    private static double MaxAbs(Tensor a, Tensor b) =>
        (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();
}
