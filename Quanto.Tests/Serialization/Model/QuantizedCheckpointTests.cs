using NUnit.Framework;
using Quanto.Quantization;
using Quanto.Serialization;
using Quanto.Tensors;
using Quanto.Tests.TestSupport;
using static Quanto.Tests.Serialization.SerializationTestUtil;
using static TorchSharp.torch;

namespace Quanto.Tests.Serialization;

public class QuantizedCheckpointTests : TempFolderTests
{
    [Test]
    public void LoadsAHandBuiltOptimumQuantoCheckpointFolder()
    {
        // What optimum-quanto's QLinear(3 -> 2, qint8 weights, qint8 activations) saves once frozen and calibrated.
        string header = """{"fc.weight._scale":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]},"fc.bias":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"fc.input_scale":{"dtype":"F32","shape":[],"data_offsets":[16,20]},"fc.output_scale":{"dtype":"F32","shape":[],"data_offsets":[20,24]},"fc.weight._data":{"dtype":"I8","shape":[2,3],"data_offsets":[24,30]}}""";
        byte[] data = Concat(F32(0.5f, 0.25f), F32(1f, -1f), F32(0.02f), F32(1f), [1, 0xFE, 3, 127, 0, 0x80]);
        File.WriteAllBytes(Path.Combine(Folder, "model.safetensors"), SafetensorsBytes(header, data));
        File.WriteAllText(Path.Combine(Folder, "quanto_qmap.json"),
            """{"fc": {"weights": "qint8", "activations": "qint8"}}""");
        using QuantizedCheckpoint checkpoint = QuantizedCheckpoint.Load(Folder);
        Assert.That(checkpoint.QuantizationMap["fc"], Is.EqualTo(new QuantizationSpec(QType.QInt8, QType.QInt8)));
        using QuantizedModuleState fc = checkpoint.ReadModule("fc", [2, 3], hasBias: true);
        using Tensor w = fc.Weight!.Dequantize();
        Assert.That(Floats(w), Is.EqualTo(new[] { 0.5f, -1f, 1.5f, 31.75f, 0f, -32f }));
        Assert.That(Floats(fc.Bias!), Is.EqualTo(new[] { 1f, -1f }));
        Assert.That(Floats(fc.InputScale!), Is.EqualTo(new[] { 0.02f }));
        Assert.DoesNotThrow(checkpoint.ThrowIfUnconsumed);
    }

    [Test]
    public void AMissingMapIsReported()
    {
        string path = Path.Combine(Folder, "model.safetensors");
        using (Tensor t = ones(1)) Safetensors.Save(path, [KeyValuePair.Create("x", t)]);
        var e = Assert.Throws<QuantoFormatException>(() => QuantizedCheckpoint.Load(path))!;
        Assert.That(e.Message, Does.Contain("quanto_qmap.json"));
    }

    [TestCase("model.safetensors", null)]
    [TestCase("model.safetensors", 300L)]
    [TestCase("model.qnt", null)]
    public void FrozenAndUnfrozenModulesRoundTripInBothFormats(string file, long? maxShardBytes)
    {
        using Tensor w1 = randn(4, 256), w2 = randn(6, 8, 3, 3), w3 = randn(3, 16), norm = randn(16);
        using QuantizedWeight q1 = WeightQuantizer.Quantize(w1, QType.QInt4);
        using QuantizedWeight q2 = WeightQuantizer.Quantize(w2, QType.QFloat8E4M3Fn);
        using Tensor bias = randn(4), s1 = tensor(0.5f), s2 = tensor(1f);
        var map = new QuantizationMap
        {
            { "fc1", new QuantizationSpec(QType.QInt4, null) },
            { "conv", new QuantizationSpec(QType.QFloat8E4M3Fn, QType.QInt8) },
            { "fc2", new QuantizationSpec(QType.QInt8, null) }, // not frozen yet: float weight + map
        };
        var modules = new Dictionary<string, QuantizedModuleState>
        {
            ["fc1"] = new() { Weight = q1, Bias = bias, InputScale = s2, OutputScale = s2 },
            ["conv"] = new() { Weight = q2, InputScale = s1, OutputScale = s2 },
            ["fc2"] = new() { FloatWeight = w3, InputScale = s2, OutputScale = s2 },
        };
        string path = Path.Combine(Folder, file);
        QuantizedCheckpoint.Save(path, modules, map, [KeyValuePair.Create("norm.weight", norm)],
            maxShardBytes: maxShardBytes);
        string loadFrom = maxShardBytes is null ? path : Path.Combine(Folder, "model.safetensors.index.json");
        using QuantizedCheckpoint back = QuantizedCheckpoint.Load(loadFrom);
        using (QuantizedModuleState fc1 = back.ReadModule("fc1", [4, 256], hasBias: true))
        using (QuantizedModuleState conv = back.ReadModule("conv", [6, 8, 3, 3], hasBias: false))
        using (QuantizedModuleState fc2 = back.ReadModule("fc2", [3, 16], hasBias: false))
        {
            using Tensor d1 = fc1.Weight!.Dequantize(), e1 = q1.Dequantize();
            using Tensor d2 = conv.Weight!.Dequantize(), e2 = q2.Dequantize();
            Assert.That(Identical(d1, e1) && Identical(d2, e2), Is.True);
            Assert.That(Identical(fc1.Bias!, bias) && Identical(conv.InputScale!, s1), Is.True);
            Assert.That(fc2.Weight, Is.Null);
            Assert.That(Identical(fc2.FloatWeight!, w3), Is.True);
        }
        Assert.That(Identical(back.StateDict.Take("norm.weight", [16]), norm), Is.True);
        Assert.DoesNotThrow(back.ThrowIfUnconsumed);
    }

    [Test]
    public void ExtraKeysAreReported()
    {
        string path = Path.Combine(Folder, "model.safetensors");
        using Tensor w = randn(2, 8), s = tensor(1f), stray = ones(3);
        var modules = new Dictionary<string, QuantizedModuleState>
        {
            ["fc"] = new() { FloatWeight = w, InputScale = s, OutputScale = s },
        };
        var map = new QuantizationMap { { "fc", new QuantizationSpec(QType.QInt8, null) } };
        QuantizedCheckpoint.Save(path, modules, map, [KeyValuePair.Create("old.layer.weight", stray)]);
        using QuantizedCheckpoint back = QuantizedCheckpoint.Load(path);
        back.ReadModule("fc", [2, 8], hasBias: false).Dispose();
        var e = Assert.Throws<QuantoFormatException>(back.ThrowIfUnconsumed)!;
        Assert.That(e.Message, Does.Contain("'old.layer.weight'").And.StartWith(path));
        var notInMap = Assert.Throws<QuantoFormatException>(() => back.ReadModule("head", [2, 8], false))!;
        Assert.That(notInMap.Message, Does.Contain("module 'head' is not in the quantization map"));
    }
}
