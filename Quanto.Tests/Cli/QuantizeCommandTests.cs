using NUnit.Framework;
using Quanto.Quantization;
using Quanto.Serialization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Tests.Cli;

public class QuantizeCommandTests
{
    private CliFixture _fixture = null!;

    [SetUp]
    public void Create() => _fixture = new CliFixture();

    [TearDown]
    public void Delete() => _fixture.Dispose();

    private static readonly object[] Cases =
    [
        new object[] { "qint8", ".safetensors" }, new object[] { "qint8", ".qnt" },
        new object[] { "qint4", ".safetensors" }, new object[] { "qint4", ".qnt" },
        new object[] { "qint2", ".safetensors" }, new object[] { "qint2", ".qnt" },
        new object[] { "qfloat8", ".safetensors" }, new object[] { "qfloat8_e5m2", ".qnt" },
    ];

    [TestCaseSource(nameof(Cases))]
    public void QuantizedWeightsMatchTheLibraryAndEverythingElseIsKept(string qtypeName, string extension)
    {
        QType qtype = QTypes.Parse(qtypeName);
        string output = _fixture.PathOf("out" + extension);
        var (code, stdout, stderr) = CliFixture.Run("quantize", _fixture.Input, "-o", output, "--weights", qtypeName);
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("Quantized 5 of 12 tensors"));
        Assert.That(stdout, Does.Contain("encoder.fc1.weight").And.Contain($"F32 -> {qtype.QuantoName()}"));
        Assert.That(stdout, Does.Contain("norm.weight").And.Contain("kept (1-D)"));
        Assert.That(stdout, Does.Contain("position_ids").And.Contain("kept (not *.weight)"));
        Assert.That(stdout, Does.Match(@"Tensor data: .* -> .* \(\d+\.\d\dx smaller\)"));

        using QuantizedCheckpoint checkpoint = QuantizedCheckpoint.Load(output);
        Assert.That(checkpoint.QuantizationMap.Modules.Keys, Is.EquivalentTo(CliFixture.Weights.Select(w => w.Module)));
        foreach (var (module, shape, _) in CliFixture.Weights)
        {
            Assert.That(checkpoint.QuantizationMap[module], Is.EqualTo(new QuantizationSpec(qtype, null)));
            using QuantizedModuleState state = checkpoint.ReadModule(module, shape, hasBias: true);
            using QuantizedWeight expected = WeightQuantizer.Quantize(_fixture.Tensors[module + ".weight"], qtype);
            using Tensor want = expected.Dequantize();
            using Tensor got = state.Weight!.Dequantize();
            Assert.That(got.dtype, Is.EqualTo(want.dtype), module);
            Assert.That(CliFixture.Same(got, want), Is.True, $"{module}: differs from WeightQuantizer");
            Assert.That(CliFixture.Same(state.Bias!, _fixture.Tensors[module + ".bias"]), Is.True, module + ".bias");
            using Tensor inputScale = state.InputScale!.to(ScalarType.Float32);
            Assert.That(inputScale.item<float>(), Is.EqualTo(1f));
        }
        foreach (string key in new[] { "norm.weight", "position_ids" })
        {
            Tensor kept = checkpoint.StateDict.Take(key);
            Assert.That(kept.dtype, Is.EqualTo(_fixture.Tensors[key].dtype));
            Assert.That(CliFixture.Same(kept, _fixture.Tensors[key]), Is.True, key);
        }
        Assert.DoesNotThrow(checkpoint.ThrowIfUnconsumed);
    }

    [Test]
    public void ExcludedAndNotIncludedModulesStayFloat()
    {
        string output = _fixture.PathOf("out.safetensors");
        var (code, stdout, stderr) = CliFixture.Run("quantize", _fixture.Input, "-o", output, "-w", "qint8",
            "--include", "encoder.*", "--include", "conv", "--exclude", "*fc2");
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("kept (excluded)").And.Contain("kept (not included)"));
        QuantizationMap map = QuantizationMap.Load(_fixture.PathOf(QuantizationMap.FileNameFor(output)));
        Assert.That(map.Modules.Keys, Is.EquivalentTo(new[] { "encoder.fc1", "conv" }));
        using StateDict dict = Safetensors.Load(output);
        foreach (string key in new[] { "encoder.fc2.weight", "head.weight" })
            Assert.That(CliFixture.Same(dict[key], _fixture.Tensors[key]), Is.True, key);
        Assert.That(dict.ContainsKey("encoder.fc2.weight._data"), Is.False);
    }

    [Test]
    public void ShardedInputIsReadAndLargeOutputIsSharded()
    {
        string inFolder = _fixture.PathOf("sharded");
        Directory.CreateDirectory(inFolder);
        ShardedSafetensors.Save(inFolder, _fixture.Tensors, maxShardBytes: 40_000);
        Assert.That(File.Exists(Path.Combine(inFolder, ShardedSafetensors.IndexFileName)), Is.True);
        string outFolder = _fixture.PathOf("quantized");
        Directory.CreateDirectory(outFolder);
        var (code, stdout, stderr) = CliFixture.Run("quantize", inFolder, "-o", outFolder, "-w", "qint4",
            "--max-shard-size", "8KB");
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("model-00001-of-"));
        Assert.That(File.Exists(Path.Combine(outFolder, ShardedSafetensors.IndexFileName)), Is.True);
        using QuantizedCheckpoint checkpoint = QuantizedCheckpoint.Load(outFolder);
        var (module, shape, _) = CliFixture.Weights[1];
        using QuantizedModuleState state = checkpoint.ReadModule(module, shape, hasBias: true);
        using QuantizedWeight expected = WeightQuantizer.Quantize(_fixture.Tensors[module + ".weight"], QType.QInt4);
        using Tensor want = expected.Dequantize(), got = state.Weight!.Dequantize();
        Assert.That(CliFixture.Same(got, want), Is.True);
        Assert.That(((WeightQBitsTensor)state.Weight).GroupSize, Is.EqualTo(64));
    }

    [Test]
    public void AnotherGroupSizeGoesToQntAndIsRefusedForSafetensors()
    {
        var (code, _, stderr) = CliFixture.Run("quantize", _fixture.Input, "-o", _fixture.PathOf("g64.safetensors"),
            "-w", "qint4", "--group", "64");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("cannot re-derive").And.Contain("--format qnt"));
        Assert.That(File.Exists(_fixture.PathOf("g64.safetensors")), Is.False);

        string qnt = _fixture.PathOf("g64.qnt");
        (code, _, stderr) = CliFixture.Run("quantize", _fixture.Input, "-o", qnt, "-w", "qint4", "-g", "64",
            "--optimizer", "hqq");
        Assert.That(code, Is.Zero, stderr);
        using QntPackage package = QntPackage.Load(qnt);
        using QuantizedWeight w = package.ReadWeight("encoder.fc1");
        Assert.That(((WeightQBitsTensor)w).GroupSize, Is.EqualTo(64));
        using QuantizedWeight expected = WeightQuantizer.Quantize(_fixture.Tensors["encoder.fc1.weight"],
            QType.QInt4, 64, new HqqOptimizer());
        using Tensor want = expected.Dequantize(), got = w.Dequantize();
        Assert.That(CliFixture.Same(got, want), Is.True);
    }

    [Test]
    public void AnExistingOutputIsRefusedUnlessForced()
    {
        string output = _fixture.PathOf("out.qnt");
        File.WriteAllText(output, "old");
        var (code, _, stderr) = CliFixture.Run("quantize", _fixture.Input, "-o", output, "-w", "qint8");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(stderr, Does.Contain("already exists").And.Contain("--force"));
        Assert.That(File.ReadAllText(output), Is.EqualTo("old"));
        (code, _, stderr) = CliFixture.Run("quantize", _fixture.Input, "-o", output, "-w", "qint8", "--force", "-q");
        Assert.That(code, Is.Zero, stderr);
        using QntPackage package = QntPackage.Load(output);
        Assert.That(package.QuantizationMap.Count, Is.EqualTo(5));
    }

    [Test]
    public void AQuantizedCheckpointIsNotQuantizedAgain()
    {
        string output = _fixture.PathOf("out.safetensors");
        Assert.That(CliFixture.Run("quantize", _fixture.Input, "-o", output, "-w", "qint8").Code, Is.Zero);
        var (code, _, stderr) = CliFixture.Run("quantize", output, "-o", _fixture.PathOf("again.qnt"), "-w", "qint4");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("already quantized"));
    }

    [Test]
    public void ProgressGoesToStderrAndForcedSingleFileOutputDropsAStaleIndex()
    {
        string outFolder = _fixture.PathOf("out");
        Directory.CreateDirectory(outFolder);
        var (code, _, stderr) = CliFixture.Run("quantize", _fixture.Input, "-o", outFolder, "-w", "qint8",
            "--max-shard-size", "4KB", "--progress", "-q");
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stderr, Does.Contain("[12/12]").And.Contain(" MB "));
        string index = Path.Combine(outFolder, ShardedSafetensors.IndexFileName);
        Assert.That(File.Exists(index), Is.True);
        (code, _, stderr) = CliFixture.Run("quantize", _fixture.Input, "-o", outFolder, "-w", "qint4", "--force");
        Assert.That(code, Is.Zero, stderr);
        Assert.That(File.Exists(index), Is.False, "a stale index would shadow the new model.safetensors");
        using QuantizedCheckpoint checkpoint = QuantizedCheckpoint.Load(outFolder);
        Assert.That(checkpoint.QuantizationMap["head"].Weights, Is.EqualTo(QType.QInt4));
    }
}
