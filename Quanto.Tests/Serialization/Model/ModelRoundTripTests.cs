using NUnit.Framework;
using Quanto.Serialization;
using Quanto.Tests.TestSupport;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Serialization;

/// <summary>
/// Whole models, bit-exact: save -> requantize a fresh float model from the file, and save -> load into an
/// identically quantized model; every tensor the model holds and the forward output must be identical. The
/// reference is the original model object itself (its state dict and quantized parts), never the file.
/// </summary>
public class ModelRoundTripTests : TempFolderTests
{
    private static readonly QType[] AllQTypes =
    [
        QType.QInt2, QType.QInt4, QType.QInt8, QType.QFloat8E4M3Fn, QType.QFloat8E5M2, QType.QFloat8E4M3Fnuz,
    ];

    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (QType qtype in AllQTypes)
        {
            foreach (bool conv in new[] { false, true })
            {
                foreach (bool activations in new[] { false, true })
                {
                    foreach (bool frozen in new[] { true, false })
                    {
                        foreach (string extension in new[] { ".safetensors", ".qnt" })
                        {
                            yield return new TestCaseData(qtype, conv, activations, frozen, extension).SetName(
                                $"RoundTrip({qtype},{(conv ? "SmallCnn" : "NormMlp")}," +
                                $"{(activations ? "A8calibrated" : "A-none")},{(frozen ? "frozen" : "dynamic")}," +
                                $"{extension})");
                        }
                    }
                }
            }
        }
    }

    private static Module<Tensor, Tensor> Build(bool conv, long seed) =>
        // The CNN on 10x10 inputs: conv1 rows of 9 (per channel), conv2 rows of 288 (int2/int4 groups of 96), fc rows
        // of 128.
        Seeded.Create<Module<Tensor, Tensor>>(() => conv ? new Cnn(32, 8, 4) : new NormMlp(), seed);

    private static void Prepare(Module<Tensor, Tensor> model, QType qtype, bool conv, bool activations, bool frozen,
        bool calibrate, int? groupSize = null)
    {
        Quantizer.Quantize(model, qtype, activations ? QType.QInt8 : null, groupSize: groupSize);
        if (activations && calibrate)
        {
            model.eval();
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            using (new Calibration())
            {
                model.forward(ModelCompare.Input(conv, seed: 11));
                model.forward(ModelCompare.Input(conv, seed: 12));
            }
        }
        if (frozen) Quantizer.Freeze(model);
    }

    [TestCaseSource(nameof(Cases))]
    public void RoundTrip(QType qtype, bool conv, bool activations, bool frozen, string extension)
    {
        using Module<Tensor, Tensor> model = Build(conv, seed: 0);
        Prepare(model, qtype, conv, activations, frozen, calibrate: true);
        using Tensor input = ModelCompare.Input(conv);
        byte[] output = ModelCompare.Output(model, input);
        var snapshot = ModelCompare.Snapshot(model);
        string[] modules = ModelCompare.Modules(model);
        if (activations)
        {
            float inScale = Quantizer.QuantizedModules(model).First().input_scale.item<float>();
            Assert.That(inScale, Is.Not.EqualTo(1f), "calibration set the scales");
        }
        string path = Path.Combine(Folder, "model" + extension);
        QuantizedModel.Save(model, path);

        // 1. A fresh float model (other initial values) requantized from the file.
        using (Module<Tensor, Tensor> fresh = Build(conv, seed: 7))
        {
            Assert.That(ModelCompare.Output(fresh, input), Is.Not.EqualTo(output), "the fresh model differs at first");
            Quantizer.Requantize(fresh, path);
            Assert.That(ModelCompare.Modules(fresh), Is.EqualTo(modules));
            Assert.That(ModelCompare.Snapshot(fresh), Is.EqualTo(snapshot));
            Assert.That(ModelCompare.Output(fresh, input), Is.EqualTo(output));
        }

        // 2. Loaded into a model quantized the same way (not calibrated, other initial values).
        using (Module<Tensor, Tensor> twin = Build(conv, seed: 9))
        {
            Prepare(twin, qtype, conv, activations, frozen, calibrate: false);
            QuantizedModel.Load(twin, path);
            Assert.That(ModelCompare.Modules(twin), Is.EqualTo(modules));
            Assert.That(ModelCompare.Snapshot(twin), Is.EqualTo(snapshot));
            Assert.That(ModelCompare.Output(twin, input), Is.EqualTo(output));
        }
    }

    [TestCase(".qnt", true)]
    [TestCase(".qnt", false)]
    [TestCase(".safetensors", false)]
    public void NonDefaultGroupSizesComeBack(string extension, bool frozen)
    {
        using Module<Tensor, Tensor> model = Build(conv: false, seed: 0);
        Prepare(model, QType.QInt4, false, false, frozen, calibrate: false, groupSize: 64);
        using Tensor input = ModelCompare.Input(false);
        byte[] output = ModelCompare.Output(model, input);
        string path = Path.Combine(Folder, "model" + extension);
        QuantizedModel.Save(model, path);
        using Module<Tensor, Tensor> fresh = Build(conv: false, seed: 7);
        Quantizer.Requantize(fresh, path);
        Assert.That(ModelCompare.Modules(fresh), Is.EqualTo(ModelCompare.Modules(model)));
        Assert.That(ModelCompare.Modules(fresh)[0], Does.EndWith(":64"));
        Assert.That(ModelCompare.Snapshot(fresh), Is.EqualTo(ModelCompare.Snapshot(model)));
        Assert.That(ModelCompare.Output(fresh, input), Is.EqualTo(output));

        // Loaded into a model quantized with the default group size: a frozen weight keeps the file's layout (a
        // dynamic module keeps its own group size, so only its float weights are compared).
        using Module<Tensor, Tensor> twin = Build(conv: false, seed: 9);
        Prepare(twin, QType.QInt4, false, false, frozen, calibrate: false);
        QuantizedModel.Load(twin, path);
        Assert.That(ModelCompare.Snapshot(twin), Is.EqualTo(ModelCompare.Snapshot(model)));
        if (frozen) Assert.That(ModelCompare.Output(twin, input), Is.EqualTo(output));
    }

    [Test]
    public void APackageIsSelfDescribingWithoutTheGroupSizeMetadata()
    {
        using Module<Tensor, Tensor> model = Build(conv: false, seed: 0);
        Prepare(model, QType.QInt4, false, false, frozen: true, calibrate: false, groupSize: 64);
        using Tensor input = ModelCompare.Input(false);
        byte[] output = ModelCompare.Output(model, input);
        string path = Path.Combine(Folder, "model.qnt");
        QuantizedModel.Save(model, path);
        using (QntPackage package = QntPackage.Load(path))
        {
            Assert.That(package.Metadata.Remove(QuantizedModel.GroupSizesMetadataKey), Is.True);
            package.Save(path); // as another writer would: the group size only in the weight tensors' tags
        }
        using Module<Tensor, Tensor> fresh = Build(conv: false, seed: 7);
        Quantizer.Requantize(fresh, path);
        Assert.That(ModelCompare.Output(fresh, input), Is.EqualTo(output));
        using Module<Tensor, Tensor> twin = Build(conv: false, seed: 9);
        Prepare(twin, QType.QInt4, false, false, frozen: true, calibrate: false);
        QuantizedModel.Load(twin, path);
        Assert.That(ModelCompare.Snapshot(twin), Is.EqualTo(ModelCompare.Snapshot(model)));
        Assert.That(ModelCompare.Output(twin, input), Is.EqualTo(output));
    }

    [TestCase(".safetensors")]
    [TestCase(".qnt")]
    public void ABFloat16ModelRoundTrips(string extension)
    {
        using Module<Tensor, Tensor> model = Build(conv: false, seed: 0);
        model.to(ScalarType.BFloat16);
        Prepare(model, QType.QInt4, false, false, frozen: true, calibrate: false);
        using Tensor input = ModelCompare.Input(false).to(ScalarType.BFloat16);
        byte[] output = ModelCompare.Output(model, input);
        string path = Path.Combine(Folder, "model" + extension);
        QuantizedModel.Save(model, path);
        using Module<Tensor, Tensor> fresh = Build(conv: false, seed: 7);
        fresh.to(ScalarType.BFloat16);
        Quantizer.Requantize(fresh, path);
        Assert.That(ModelCompare.Snapshot(fresh), Is.EqualTo(ModelCompare.Snapshot(model)));
        Assert.That(ModelCompare.Output(fresh, input), Is.EqualTo(output));
    }

    [Test]
    public void AFrozenNonDefaultGroupSizeIsRefusedAsSafetensors()
    {
        using Module<Tensor, Tensor> model = Build(conv: false, seed: 0);
        Prepare(model, QType.QInt4, false, false, frozen: true, calibrate: false, groupSize: 64);
        string path = Path.Combine(Folder, "model.safetensors");
        var e = Assert.Throws<ArgumentException>(() => QuantizedModel.Save(model, path))!;
        Assert.That(e.Message, Does.Contain(".qnt"));
        Assert.That(File.Exists(path), Is.False);
    }

    [Test]
    public void ShardedSaveAndTheExtensionMethods()
    {
        using Module<Tensor, Tensor> model = Build(conv: true, seed: 0);
        Prepare(model, QType.QInt4, true, true, frozen: true, calibrate: true);
        using Tensor input = ModelCompare.Input(true);
        byte[] output = ModelCompare.Output(model, input);
        QuantizedModel.Save(model, Path.Combine(Folder, "model.safetensors"), maxShardBytes: 512);
        Assert.That(Directory.GetFiles(Folder, "model-*.safetensors"), Has.Length.GreaterThan(1));
        string index = Path.Combine(Folder, "model.safetensors.index.json");
        Assert.That(File.Exists(index) && File.Exists(Path.Combine(Folder, "quanto_qmap.json")), Is.True);

        using Module<Tensor, Tensor> fresh = Build(conv: true, seed: 7);
        fresh.LoadQuantized(Folder); // float model: requantized
        Assert.That(ModelCompare.Snapshot(fresh), Is.EqualTo(ModelCompare.Snapshot(model)));
        Assert.That(ModelCompare.Output(fresh, input), Is.EqualTo(output));

        string qnt = Path.Combine(Folder, "copy.qnt");
        fresh.SaveQuantized(qnt);
        using Module<Tensor, Tensor> twin = Build(conv: true, seed: 9);
        Prepare(twin, QType.QInt4, true, true, frozen: false, calibrate: false);
        twin.LoadQuantized(qnt); // quantized model: loaded (and frozen by the quantized weights)
        Assert.That(ModelCompare.Snapshot(twin), Is.EqualTo(ModelCompare.Snapshot(model)));
        Assert.That(ModelCompare.Output(twin, input), Is.EqualTo(output));
    }

    [Test]
    public void FloatWeightsLoadedIntoAFrozenModelAreQuantizedAsFreezeWould()
    {
        using Module<Tensor, Tensor> model = Build(conv: false, seed: 0);
        Prepare(model, QType.QInt4, false, false, frozen: false, calibrate: false);
        string path = Path.Combine(Folder, "model.safetensors");
        QuantizedModel.Save(model, path);
        Quantizer.Freeze(model);
        using Module<Tensor, Tensor> twin = Build(conv: false, seed: 9);
        Prepare(twin, QType.QInt4, false, false, frozen: true, calibrate: false);
        QuantizedModel.Load(twin, path);
        Assert.That(ModelCompare.Snapshot(twin), Is.EqualTo(ModelCompare.Snapshot(model)));
    }

    [Test]
    public void SelectedModulesWithExcludedLayersLeftFloat()
    {
        using Module<Tensor, Tensor> model = Build(conv: false, seed: 0);
        Quantizer.Quantize(model, QType.QInt8, exclude: ["fc2"]);
        Quantizer.Freeze(model);
        using Tensor input = ModelCompare.Input(false);
        byte[] output = ModelCompare.Output(model, input);
        string path = Path.Combine(Folder, "model.qnt");
        QuantizedModel.Save(model, path);
        using QuantizedCheckpoint checkpoint = QuantizedCheckpoint.Load(path);
        Assert.That(checkpoint.QuantizationMap.Modules.Keys, Is.EqualTo(new[] { "fc1" }));
        Assert.That(checkpoint.StateDict.Tensors.Keys, Is.EquivalentTo(new[]
        {
            "fc1.weight._data", "fc1.weight._scale", "fc1.bias", "fc1.input_scale", "fc1.output_scale",
            "norm.weight", "norm.bias", "fc2.weight", "fc2.bias",
        }));
        using Module<Tensor, Tensor> fresh = Build(conv: false, seed: 7);
        Quantizer.Requantize(fresh, checkpoint.StateDict, checkpoint.QuantizationMap);
        Assert.That(ModelCompare.Snapshot(fresh), Is.EqualTo(ModelCompare.Snapshot(model)));
        Assert.That(ModelCompare.Output(fresh, input), Is.EqualTo(output));
    }
}
