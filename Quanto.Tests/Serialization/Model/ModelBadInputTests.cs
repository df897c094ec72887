using NUnit.Framework;
using Quanto.Serialization;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Serialization;

/// <summary>Checkpoints that do not fit the model: each is a QuantoFormatException naming the file and the problem,
/// and a failed load leaves the model as it was.</summary>
[TestFixture(".safetensors")]
[TestFixture(".qnt")]
public class ModelBadInputTests(string extension) : TempFolderTests
{
    private string _path = "";

    [SetUp]
    public void SaveAModel() => _path = SaveModel(Folder, extension);

    /// <summary>A frozen qint8 NormMlp(256, 64) saved as folder/model{extension}; fc2.bias is all 1234.5.</summary>
    internal static string SaveModel(string folder, string extension)
    {
        string path = Path.Combine(folder, "model" + extension);
        using Module<Tensor, Tensor> model = Build(seed: 0);
        using (no_grad())
        {
            foreach ((string name, Tensor t) in model.named_parameters())
            {
                if (name == "fc2.bias") t.fill_(1234.5f); // a byte pattern the checksum test can find
            }
        }
        Quantizer.Freeze(model);
        QuantizedModel.Save(model, path);
        return path;
    }

    private static Module<Tensor, Tensor> Build(long seed, long hidden = 64)
    {
        Module<Tensor, Tensor> model = Seeded.Create<Module<Tensor, Tensor>>(() => new NormMlp(256, hidden), seed);
        Quantizer.Quantize(model, QType.QInt8);
        return model;
    }

    internal static Module<Tensor, Tensor> Float(long hidden = 64) =>
        Seeded.Create<Module<Tensor, Tensor>>(() => new NormMlp(256, hidden), 5);

    [Test]
    public void ShapeMismatchNamesTheKeyAndBothShapes()
    {
        using Module<Tensor, Tensor> fresh = Float(hidden: 32);
        var e = Assert.Throws<QuantoFormatException>(() => Quantizer.Requantize(fresh, _path))!;
        Assert.That(e.Message, Does.StartWith(_path));
        Assert.That(e.Message, Does.Contain("shape mismatch for 'fc1.weight._data'")
            .And.Contain("the file holds [64, 256]").And.Contain("the model expects [32, 256]"));

        using Module<Tensor, Tensor> twin = Build(seed: 3, hidden: 32);
        Quantizer.Freeze(twin);
        var before = ModelCompare.Snapshot(twin);
        var again = Assert.Throws<QuantoFormatException>(() => QuantizedModel.Load(twin, _path))!;
        Assert.That(again.Message,
            Does.Contain("'fc1.weight._data'").And.Contain("[64, 256]").And.Contain("[32, 256]"));
        Assert.That(ModelCompare.Snapshot(twin), Is.EqualTo(before), "a failed load leaves the model untouched");
    }

    [TestCase("fc2.bias")]
    [TestCase("fc1.weight._scale")]
    [TestCase("fc1.input_scale")]
    [TestCase("norm.weight")]
    public void AMissingKeyIsNamed(string key)
    {
        using QuantizedCheckpoint checkpoint = QuantizedCheckpoint.Load(_path);
        Assert.That(checkpoint.StateDict.Tensors.Remove(key, out Tensor? removed), Is.True);
        removed!.Dispose();
        using Module<Tensor, Tensor> fresh = Float();
        var e = Assert.Throws<QuantoFormatException>(
            () => Quantizer.Requantize(fresh, checkpoint.StateDict, checkpoint.QuantizationMap))!;
        Assert.That(e.Message, Does.StartWith(_path).And.Contain($"missing key '{key}'"));
    }

    [Test]
    public void ExtraKeysAreReportedAndTheModelIsLeftAsItWas()
    {
        using QuantizedCheckpoint checkpoint = QuantizedCheckpoint.Load(_path);
        checkpoint.StateDict.Add("stray.weight", ones(3));
        checkpoint.StateDict.Add("fc1.weight", ones(64, 256)); // a float weight beside the quantized one
        using Module<Tensor, Tensor> twin = Build(seed: 3);
        var before = ModelCompare.Snapshot(twin);
        var e = Assert.Throws<QuantoFormatException>(
            () => QuantizedModel.Load(twin, checkpoint.StateDict, checkpoint.QuantizationMap))!;
        Assert.That(e.Message, Does.Contain("unexpected key"));
        Assert.That(e.Message, Does.Contain("'stray.weight'").And.Contain("'fc1.weight._data'"));
        Assert.That(ModelCompare.Snapshot(twin), Is.EqualTo(before));
    }

    [Test]
    public void AMapNamingAModuleTheModelLacks()
    {
        using QuantizedCheckpoint checkpoint = QuantizedCheckpoint.Load(_path);
        checkpoint.QuantizationMap.Add("blocks.0.fc9", new QuantizationSpec(QType.QInt8, null));
        using Module<Tensor, Tensor> fresh = Float();
        var e = Assert.Throws<QuantoFormatException>(
            () => Quantizer.Requantize(fresh, checkpoint.StateDict, checkpoint.QuantizationMap))!;
        Assert.That(e.Message, Does.StartWith(_path).And.Contain("names module 'blocks.0.fc9'"));
        Assert.That(Quantizer.QuantizedModules(fresh), Is.Empty, "the map is checked before anything is swapped");

        using Module<Tensor, Tensor> twin = Build(seed: 3);
        var load = Assert.Throws<QuantoFormatException>(
            () => QuantizedModel.Load(twin, checkpoint.StateDict, checkpoint.QuantizationMap))!;
        Assert.That(load.Message, Does.Contain("names module 'blocks.0.fc9', which is not a quantized module"));
    }

    [Test]
    public void AModelQuantizedDifferentlyIsRefused()
    {
        using Module<Tensor, Tensor> twin = Seeded.Create<Module<Tensor, Tensor>>(() => new NormMlp(256, 64), 3);
        Quantizer.Quantize(twin, QType.QInt4);
        var e = Assert.Throws<QuantoFormatException>(() => QuantizedModel.Load(twin, _path))!;
        Assert.That(e.Message, Does.Contain("module 'fc1': the file quantizes it to weights qint8, activations none, " +
            "the model to weights qint4, activations none"));

        using Module<Tensor, Tensor> partial = Seeded.Create<Module<Tensor, Tensor>>(() => new NormMlp(256, 64), 3);
        Quantizer.Quantize(partial, QType.QInt8, exclude: ["fc2"]);
        var missing = Assert.Throws<QuantoFormatException>(() => QuantizedModel.Load(partial, _path))!;
        Assert.That(missing.Message, Does.Contain("names module 'fc2'"));
    }

    [Test]
    public void AMapEntryThatCannotBeQuantizedIsNamed()
    {
        using QuantizedCheckpoint checkpoint = QuantizedCheckpoint.Load(_path);
        checkpoint.QuantizationMap.Add("norm", new QuantizationSpec(QType.QInt4, null)); // LayerNorm, weights only
        using Module<Tensor, Tensor> fresh = Float();
        var e = Assert.Throws<QuantoFormatException>(
            () => Quantizer.Requantize(fresh, checkpoint.StateDict, checkpoint.QuantizationMap))!;
        Assert.That(e.Message, Does.Contain("module 'norm' cannot be quantized"));
    }
}

/// <summary>Bad input specific to one format.</summary>
public class ModelBadInputSingleFormatTests : TempFolderTests
{
    [Test]
    public void AnUnknownQTypeInTheMapIsAClearError()
    {
        string path = ModelBadInputTests.SaveModel(Folder, ".safetensors");
        string mapPath = Path.Combine(Folder, QuantizationMap.FileName);
        File.WriteAllText(mapPath, File.ReadAllText(mapPath).Replace("\"qint8\"", "\"qint3\""));
        using Module<Tensor, Tensor> fresh = ModelBadInputTests.Float();
        var e = Assert.Throws<QuantoFormatException>(() => Quantizer.Requantize(fresh, path))!;
        Assert.That(e.Message, Does.StartWith(mapPath).And.Contain("unknown weights qtype 'qint3'")
            .And.Contain("module 'fc1'"));
        Assert.That(Quantizer.QuantizedModules(fresh), Is.Empty);
    }

    [Test]
    public void AChecksumMismatchInAPackageIsDetected()
    {
        string path = ModelBadInputTests.SaveModel(Folder, ".qnt");
        byte[] file = File.ReadAllBytes(path);
        byte[] pattern = BitConverter.GetBytes(1234.5f);
        int at = file.AsSpan().IndexOf([.. pattern, .. pattern, .. pattern, .. pattern]);
        Assert.That(at, Is.GreaterThan(0), "fc2.bias bytes are in the package");
        file[at + 5] ^= 0x10;
        File.WriteAllBytes(path, file);
        using Module<Tensor, Tensor> fresh = ModelBadInputTests.Float();
        var e = Assert.Throws<QuantoFormatException>(() => fresh.LoadQuantized(path))!;
        Assert.That(e.Message, Does.StartWith(path).And.Contain("checksum"));
        Assert.That(Quantizer.QuantizedModules(fresh), Is.Empty, "nothing was swapped");
    }
}
