using NUnit.Framework;
using Quanto.Serialization;
using Quanto.Tests.TestSupport;
using static Quanto.Tests.Serialization.SerializationTestUtil;
using static TorchSharp.torch;

namespace Quanto.Tests.Serialization;

/// <summary>
/// The JSON documents of a checkpoint (quanto_qmap.json, the shard index, JSON held in metadata, the safetensors
/// header): repeated keys, text that is not UTF-8 and escapes that decode to no text are format errors naming the
/// file, never another exception type (issue 19: ArgumentException and InvalidOperationException escaped).
/// </summary>
public class MalformedJsonTests : TempFolderTests
{
    private static string Problem(Action load) => Assert.Throws<QuantoFormatException>(() => load())!.Problem;

    [Test]
    public void QuantizationMapWithARepeatedKeyOrBadText()
    {
        Assert.That(Problem(() => QuantizationMap.Parse("""
            {"fc": {"weights": "qint4", "activations": "none"}, "fc": {"weights": "qint8", "activations": "none"}}
            """, "m.json")), Is.EqualTo("quantization map lists the key 'fc' twice."));
        Assert.That(Problem(() => QuantizationMap.Parse(
            """{"fc": {"weights": "qint4", "weights": "qint8", "activations": "none"}}""", "m.json")),
            Is.EqualTo("quantization map lists the key 'fc' > 'weights' twice."));
        Assert.That(Problem(() => QuantizationMap.Parse("""{"\ud800": {"weights": "qint4"}}""", "m.json")),
            Does.StartWith("quantization map holds a string that is not valid text"));
        string path = Path.Combine(Folder, QuantizationMap.FileName);
        File.WriteAllBytes(path, [.. "{\"f"u8, 0xFF, .. "\": {}}"u8]);
        var e = Assert.Throws<QuantoFormatException>(() => QuantizationMap.Load(path))!;
        Assert.That(e.Message, Is.EqualTo($"{path}: quantization map is not valid UTF-8 text."));
        File.WriteAllBytes(path, [0xEF, 0xBB, 0xBF, .. """{"fc": {"weights": "qint4", "activations": "none"}}"""u8]);
        Assert.That(QuantizationMap.Load(path)["fc"].Weights, Is.EqualTo(QType.QInt4), "a byte-order mark is fine");
    }

    [Test]
    public void WrittenAsOptimumQuantosJsonDumpWithIndentFour()
    {
        var map = new QuantizationMap
        {
            { "fc1", new QuantizationSpec(QType.QInt4, null) },
            { "head", new QuantizationSpec(QType.QInt8, QType.QFloat8E4M3Fn) },
        };
        // Python: json.dump({"fc1": {...}, "head": {...}}, f, indent=4), no final newline.
        const string expected = "{\n    \"fc1\": {\n        \"weights\": \"qint4\",\n" +
            "        \"activations\": \"none\"\n    },\n    \"head\": {\n        \"weights\": \"qint8\",\n" +
            "        \"activations\": \"qfloat8_e4m3fn\"\n    }\n}";
        string path = Path.Combine(Folder, QuantizationMap.FileName);
        map.Save(path);
        Assert.That(File.ReadAllText(path), Is.EqualTo(expected));
    }

    private string ShardedCheckpoint()
    {
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>
        {
            ["a"] = tensor(new[] { 1f, 2f }), ["b"] = tensor(new[] { 3f, 4f }), ["c"] = tensor(new[] { 5f }),
        };
        ShardedSafetensors.Save(Folder, tensors, maxShardBytes: 8);
        return Path.Combine(Folder, ShardedSafetensors.IndexFileName);
    }

    [Test]
    public void ShardIndexWithARepeatedKeyOrBadText()
    {
        string index = ShardedCheckpoint();
        File.WriteAllText(index, """
            {"weight_map": {"a": "model-00001-of-00002.safetensors", "a": "model-00002-of-00002.safetensors"}}
            """);
        Assert.That(Problem(() => ShardedSafetensors.Load(index)),
            Is.EqualTo("index lists the key 'weight_map' > 'a' twice."));
        File.WriteAllText(index, """{"weight_map": {}, "weight_map": {"a": "x.safetensors"}}""");
        Assert.That(Problem(() => ShardedSafetensors.Load(index)),
            Is.EqualTo("index lists the key 'weight_map' twice."));
        File.WriteAllBytes(index, [.. """{"weight_map": {"a": "model"""u8, 0xC3, .. "\"}}"u8]);
        Assert.That(Problem(() => ShardedSafetensors.Load(index)), Is.EqualTo("index is not valid UTF-8 text."));
        File.WriteAllText(index, """{"weight_map": {"a": "model\udfff"}}""");
        Assert.That(Problem(() => ShardedSafetensors.Load(index)), Does.StartWith("index holds a string"));
        File.WriteAllText(index, """{"weight_map": {"a": "../model-00001-of-00002.safetensors"}}""");
        Assert.That(Problem(() => ShardedSafetensors.Load(index)), Does.Contain("not a file beside the index"));
    }

    [Test]
    public void GroupSizeMetadataWithARepeatedKey()
    {
        using var dict = new StateDict("g.safetensors");
        dict.Metadata[QuantizedModel.GroupSizesMetadataKey] = """{"fc1": 64, "fc1": 32}""";
        Assert.That(Problem(() => QuantizedModel.StoredGroupSizes(dict)),
            Is.EqualTo("metadata 'quanto_group_sizes' lists the key 'fc1' twice."));
        dict.Metadata[QuantizedModel.GroupSizesMetadataKey] = """{"fc1": 64.5}""";
        Assert.That(Problem(() => QuantizedModel.StoredGroupSizes(dict)), Does.Contain("positive multiple of 8"));
    }

    [Test]
    public void SafetensorsHeaderWithARepeatedFieldOrBadEscape()
    {
        static string Fails(string header, byte[] data)
        {
            using var stream = new MemoryStream(SafetensorsBytes(header, data));
            return Assert.Throws<QuantoFormatException>(() => Safetensors.Load(stream, "h.safetensors"))!.Problem;
        }
        Assert.That(Fails("""{"a":{"dtype":"F32","dtype":"I8","shape":[1],"data_offsets":[0,4]}}""", F32(1)),
            Is.EqualTo("tensor 'a': 'dtype' appears twice."));
        Assert.That(Fails("""{"a\ud800":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", F32(1)),
            Does.StartWith("header holds a string that is not valid text"));
        Assert.That(Fails("""{"__metadata__":{"k":"v"},"__metadata__":{}}""", []), Does.Contain("twice"));
    }
}
