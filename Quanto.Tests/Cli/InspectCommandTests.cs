using NUnit.Framework;
using Quanto.Cli;
using Quanto.Serialization;
using Quanto.Tests.Serialization;

namespace Quanto.Tests.Cli;

public class InspectCommandTests
{
    private CliFixture _fixture = null!;

    [SetUp]
    public void Create() => _fixture = new CliFixture();

    [TearDown]
    public void Delete() => _fixture.Dispose();

    [Test]
    public void DescribesAndValidatesAQuantizedSafetensorsCheckpoint()
    {
        string output = _fixture.PathOf("out.safetensors");
        Assert.That(CliFixture.Run("quantize", _fixture.Input, "-o", output, "-w", "qint4").Code, Is.Zero);
        var (code, stdout, stderr) = CliFixture.Run("inspect", output);
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("safetensors, 1 file(s)"));
        Assert.That(stdout, Does.Match(@"encoder\.fc1\.weight\._data\._data +U8 +\[64, 128\] +8\.00 KiB +qint4"));
        Assert.That(stdout, Does.Match(@"encoder\.fc1\.weight\._scale +F32 +\[128, 1\]"));
        Assert.That(stdout, Does.Match(@"conv\.weight\._data\._data +U8 +\[8, 8, 3, 3\]"));
        Assert.That(stdout, Does.Contain("weights qint4, activations none: 5 module(s)"));
        Assert.That(stdout, Does.Contain("checksums verified"));
        Assert.That(stdout, Does.Contain("Valid:"));
    }

    [Test]
    public void DescribesAQntPackage()
    {
        string output = _fixture.PathOf("out.qnt");
        Assert.That(CliFixture.Run("quantize", _fixture.Input, "-o", output, "-w", "qint2", "-g", "32").Code,
            Is.Zero);
        var (code, stdout, stderr) = CliFixture.Run("inspect", output);
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain(".qnt package v"));
        Assert.That(stdout, Does.Contain("qint2 g32 of [64, 256]"));
        Assert.That(stdout, Does.Contain("metadata quanto_weights = qint2"));
    }

    [Test]
    public void ACorruptedTensorIsReported()
    {
        string output = _fixture.PathOf("out.safetensors");
        Assert.That(CliFixture.Run("quantize", _fixture.Input, "-o", output, "-w", "qint8").Code, Is.Zero);
        byte[] bytes = File.ReadAllBytes(output);
        bytes[^5] ^= 0x40;
        File.WriteAllBytes(output, bytes);
        var (code, _, stderr) = CliFixture.Run("inspect", output);
        Assert.That(code, Is.EqualTo(ExitCodes.BadInput));
        Assert.That(stderr, Does.Contain("1 problem(s)").And.Contain("checksum mismatch for tensor"));
        Assert.That(CliFixture.Run("inspect", output, "--no-verify").Code, Is.Zero);
    }

    [Test]
    public void AMapThatDisagreesWithTheTensorsIsReported()
    {
        string output = _fixture.PathOf("out.safetensors");
        Assert.That(CliFixture.Run("quantize", _fixture.Input, "-o", output, "-w", "qint8").Code, Is.Zero);
        File.WriteAllText(_fixture.PathOf(QuantizationMap.FileNameFor(output)), """
            {"encoder.fc1": {"weights": "qint4", "activations": "none"},
             "norm": {"weights": "qint8", "activations": "none"}}
            """);
        var (code, _, stderr) = CliFixture.Run("inspect", output, "--no-verify");
        Assert.That(code, Is.EqualTo(ExitCodes.BadInput));
        Assert.That(stderr, Does.Contain("module 'encoder.fc1' (qint4): missing 'encoder.fc1.weight._data._data'"));
        Assert.That(stderr, Does.Contain("module 'norm' (qint8): missing 'norm.weight._data'"));
        Assert.That(stderr, Does.Contain("module 'conv' holds quantized weight tensors but the map"));
    }

    [Test]
    public void SingleRowWeightsInOptimumQuantosLayoutAreValid()
    {
        // value: Linear(4, 1) qint8 (0-d scale); logit: Linear(3, 1) qint4 ((1, 3) scale and shift); bad: a qint4
        // Linear(3, 1) whose scale is neither (1, 3) nor (1, 1).
        string folder = _fixture.PathOf("heads");
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), SerializationTestUtil.HandBuiltFile(
            ("value.weight._scale", "F32", [], SerializationTestUtil.F32(0.5f)),
            ("logit.weight._scale", "F32", [1, 3], SerializationTestUtil.F32(0.5f, 0.25f, 1f)),
            ("logit.weight._shift", "F32", [1, 3], SerializationTestUtil.F32(0f, 1f, 2f)),
            ("bad.weight._scale", "F32", [3], SerializationTestUtil.F32(0.5f, 0.25f, 1f)),
            ("bad.weight._shift", "F32", [3], SerializationTestUtil.F32(0f, 1f, 2f)),
            ("value.weight._data", "I8", [1, 4], [1, 2, 3, 4]),
            ("logit.weight._data._data", "U8", [1, 3], [1, 2, 3]),
            ("bad.weight._data._data", "U8", [1, 3], [1, 2, 3])));
        var map = new QuantizationMap
        {
            { "value", new QuantizationSpec(QType.QInt8, null) },
            { "logit", new QuantizationSpec(QType.QInt4, null) },
        };
        map.Save(Path.Combine(folder, QuantizationMap.FileName));
        var (code, stdout, stderr) = CliFixture.Run("inspect", folder);
        Assert.That(code, Is.EqualTo(ExitCodes.BadInput), stdout);
        Assert.That(stderr, Does.Contain("1 problem(s)"), "only the module the map lacks");
        map.Add("bad", new QuantizationSpec(QType.QInt4, null));
        map.Save(Path.Combine(folder, QuantizationMap.FileName));
        (code, _, stderr) = CliFixture.Run("inspect", folder);
        Assert.That(stderr, Does.Contain("1 problem(s)").And.Contain(
            "module 'bad' (qint4): the shapes weight._data._data [1, 3], weight._scale [3], weight._shift [3] do not " +
            "form optimum-quanto's layout"));
    }

    [Test]
    public void AnUnrelatedFloatFileBesideAStrayMapIsValid()
    {
        // A quantized checkpoint of an earlier version left quanto_qmap.json in the folder (issue 13 item 6).
        File.WriteAllText(_fixture.PathOf(QuantizationMap.FileName), """
            {"encoder.fc1": {"weights": "qint4", "activations": "none"}}
            """);
        string floats = _fixture.PathOf("floats.safetensors");
        File.Copy(_fixture.Input, floats);
        var (code, stdout, stderr) = CliFixture.Run("inspect", floats);
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("Quantization map: none (the folder's quanto_qmap.json is not used: these " +
            "weights hold no quantized module)."));
    }

    [Test]
    public void APlainCheckpointIsValidWithoutAMap()
    {
        var (code, stdout, stderr) = CliFixture.Run("inspect", _fixture.Input);
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("Quantization map: none"));
        Assert.That(stdout, Does.Contain("no checksums stored"));
    }

    [Test]
    public void ATruncatedQntPackageExitsWithOneAndTheFormatError()
    {
        string output = _fixture.PathOf("out.qnt");
        Assert.That(CliFixture.Run("quantize", _fixture.Input, "-o", output, "-w", "qint8").Code, Is.Zero);
        byte[] bytes = File.ReadAllBytes(output);
        File.WriteAllBytes(output, bytes.AsSpan(0, bytes.Length / 2).ToArray());
        var (code, _, stderr) = CliFixture.Run("inspect", output);
        Assert.That(code, Is.EqualTo(ExitCodes.BadInput));
        Assert.That(stderr, Does.StartWith("quanto: error: " + output + ":"));
    }
}
