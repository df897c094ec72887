using System.Buffers.Binary;
using System.Text;
using NUnit.Framework;
using Quanto.Serialization;
using static Quanto.Tests.Serialization.SerializationTestUtil;
using static TorchSharp.torch;

namespace Quanto.Tests.Serialization;

public class SafetensorsTests
{
    [Test]
    public void ReadsAHandBuiltFile()
    {
        // Two tensors in file order b, a (offsets decide the order, not the JSON order).
        string header = """{"__metadata__":{"format":"pt","note":"hi"},"a":{"dtype":"I8","shape":[3],"data_offsets":[8,11]},"b":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]}}""";
        byte[] file = SafetensorsBytes(header, Concat(F32(1.5f, -2f), [1, 0xFF, 127]));
        using var stream = new MemoryStream(file);
        using StateDict dict = Safetensors.Load(stream, "hand.safetensors");
        Assert.That(dict.Tensors.Keys, Is.EqualTo(new[] { "b", "a" }));
        Assert.That(dict["b"].dtype, Is.EqualTo(ScalarType.Float32));
        Assert.That(dict["b"].shape, Is.EqualTo(new long[] { 2, 1 }));
        Assert.That(Floats(dict["b"]), Is.EqualTo(new[] { 1.5f, -2f }));
        Assert.That(dict["a"].data<sbyte>().ToArray(), Is.EqualTo(new sbyte[] { 1, -1, 127 }));
        Assert.That(dict.Metadata,
            Is.EquivalentTo(new Dictionary<string, string> { ["format"] = "pt", ["note"] = "hi" }));
    }

    [Test]
    public void WritesTheReferenceLayoutByteForByte()
    {
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>
        {
            ["z.small"] = tensor(new sbyte[] { -1, 2 }),
            ["weight"] = tensor(new[] { 1f, 2f, 3f, 4f }, [2, 2]),
            ["a.half"] = tensor(new[] { 1f }).to(ScalarType.Float16),
        };
        using var stream = new MemoryStream();
        Safetensors.Write(stream, tensors, checksums: false);
        // Reference order: largest element first (F32, F16, I8), then name; __metadata__ first; compact JSON.
        string json = """{"__metadata__":{"format":"pt"},"weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"a.half":{"dtype":"F16","shape":[1],"data_offsets":[16,18]},"z.small":{"dtype":"I8","shape":[2],"data_offsets":[18,20]}}""";
        byte[] expected = SafetensorsBytes(json, Concat(F32(1, 2, 3, 4), [0x00, 0x3C], [0xFF, 0x02])); // fp16 1.0 = 0x3C00
        Assert.That(stream.ToArray(), Is.EqualTo(expected));
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(expected) % 8, Is.EqualTo(0UL));
    }

    [Test]
    public void EveryDTypeRoundTripsBitExactly()
    {
        using var scope = NewDisposeScope();
        Tensor source = tensor(new[] { 0f, 1f, -2.5f, 3.25f, 100f, -0.125f }, [2, 3]);
        ScalarType[] types =
        [
            ScalarType.Float64, ScalarType.Float32, ScalarType.Float16, ScalarType.BFloat16, ScalarType.Int64,
            ScalarType.Int32, ScalarType.Int16, ScalarType.Int8, ScalarType.Byte, ScalarType.Bool,
            QTypes.Float8E4M3Fn, QTypes.Float8E5M2, QTypes.Float8E4M3Fnuz,
        ];
        var tensors = types.Select(t => KeyValuePair.Create(t.ToString(), source.to(t))).ToList();
        tensors.Add(KeyValuePair.Create("scalar", tensor(7.5f)));
        tensors.Add(KeyValuePair.Create("empty", zeros(0, 4)));
        using var stream = new MemoryStream();
        Safetensors.Write(stream, tensors);
        using StateDict back = Safetensors.Load(stream, "mem");
        foreach (var (name, t) in tensors) Assert.That(Identical(back[name], t), Is.True, name);
        string json = HeaderJson(stream.ToArray());
        foreach (string dtype in new[] { "F64", "BF16", "I64", "BOOL", "F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ" })
            Assert.That(json, Does.Contain($"\"dtype\":\"{dtype}\""));
    }

    [Test]
    public void Float8BytesAreTheStandardEncodings()
    {
        // 1.0 is 0x38 in e4m3fn (bias 7), 0x3C in e5m2 (bias 15), 0x40 in e4m3fnuz (bias 8); -2.0 sets the sign bit.
        using var scope = NewDisposeScope();
        Tensor values = tensor(new[] { 1f, -2f });
        (ScalarType type, byte one, byte minusTwo)[] cases =
            [(QTypes.Float8E4M3Fn, 0x38, 0xC0), (QTypes.Float8E5M2, 0x3C, 0xC0), (QTypes.Float8E4M3Fnuz, 0x40, 0xC8)];
        foreach (var (type, one, minusTwo) in cases)
        {
            using var stream = new MemoryStream();
            Safetensors.Write(stream, [KeyValuePair.Create("x", values.to(type))],
                checksums: false);
            byte[] file = stream.ToArray();
            Assert.That(file[^2..], Is.EqualTo(new[] { one, minusTwo }), type.ToString());
        }
    }

    [Test]
    public void NonContiguousTensorsAreWrittenInLogicalOrder()
    {
        using var scope = NewDisposeScope();
        Tensor t = arange(6, dtype: ScalarType.Float32).reshape(2, 3).t(); // [[0,3],[1,4],[2,5]]
        using var stream = new MemoryStream();
        Safetensors.Write(stream, [KeyValuePair.Create("t", t)], checksums: false);
        Assert.That(stream.ToArray()[^24..], Is.EqualTo(F32(0, 3, 1, 4, 2, 5)));
    }

    [Test]
    public void ChunkedCopiesMatchWholeCopies()
    {
        using var scope = NewDisposeScope();
        Tensor t = arange(1000, dtype: ScalarType.Int32);
        var pieces = new List<byte>();
        TensorBytes.ForEachChunk(t, chunk => pieces.AddRange(chunk.ToArray()), chunkBytes: 36);
        Assert.That(pieces.ToArray(), Is.EqualTo(Bytes(t)));
        Tensor target = zeros(1000, dtype: ScalarType.Int32);
        byte[] source = Bytes(t);
        int offset = 0;
        TensorBytes.ForEachChunk(target, chunk =>
        {
            source.AsSpan(offset, chunk.Length).CopyTo(chunk);
            offset += chunk.Length;
        }, chunkBytes: 64);
        Assert.That(Identical(target, t), Is.True);
    }

    [Test]
    public void ReadsTensorsBeyondTwoGigabytesInASparseFile()
    {
        // 'big' spans 2^31 + 8 bytes that are never read; 'tail' sits past the 2 GiB mark.
        // A sparse file keeps this cheap.
        const long big = (1L << 31) + 8;
        string header = "{\"big\":{\"dtype\":\"U8\",\"shape\":[" + big + "],\"data_offsets\":[0," + big +
            "]},\"tail\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" + big + "," + (big + 8) + "]}}";
        byte[] head = SafetensorsBytes(header, []);
        string folder = NewFolder();
        try
        {
            string path = Path.Combine(folder, "big.safetensors");
            using (var fs = new FileStream(path, FileMode.CreateNew))
            {
                fs.Write(head);
                fs.SetLength(head.Length + big + 8);
                fs.Position = head.Length + big;
                fs.Write(F32(1.5f, -7f));
            }
            using SafetensorsFile file = SafetensorsFile.Open(path);
            Assert.That(file.Entry("big").ByteLength, Is.EqualTo(big));
            using Tensor tail = file.Read("tail");
            Assert.That(Floats(tail), Is.EqualTo(new[] { 1.5f, -7f }));
        }
        finally
        {
            Directory.Delete(folder, true);
        }
    }

    [Test]
    public void ShardedCheckpointsRoundTripWithAHuggingFaceIndex()
    {
        string folder = NewFolder();
        try
        {
            using var scope = NewDisposeScope();
            var tensors = Enumerable.Range(0, 5)
                .Select(i => KeyValuePair.Create($"layer{i}.weight", full(new long[] { 4, 4 }, (float)i))).ToList();
            IReadOnlyList<string> files = ShardedSafetensors.Save(folder, tensors, maxShardBytes: 130); // 2 per shard
            Assert.That(files.Select(Path.GetFileName), Is.EqualTo(new[]
            {
                "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                "model-00003-of-00003.safetensors", "model.safetensors.index.json",
            }));
            var index = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(files[^1]))!;
            Assert.That((long)index["metadata"]!["total_size"]!, Is.EqualTo(5 * 64));
            Assert.That((string)index["weight_map"]!["layer4.weight"]!, Is.EqualTo("model-00003-of-00003.safetensors"));
            using StateDict back = ShardedSafetensors.Load(folder);
            Assert.That(back.Tensors.Keys, Is.EqualTo(tensors.Select(p => p.Key)));
            foreach (var (k, t) in tensors) Assert.That(Identical(back[k], t), Is.True, k);
        }
        finally
        {
            Directory.Delete(folder, true);
        }
    }

    [Test]
    public void ShardedLoadReportsAMissingShardAndDisagreeingKeys()
    {
        string folder = NewFolder();
        try
        {
            using var scope = NewDisposeScope();
            Safetensors.Save(Path.Combine(folder, "s1.safetensors"),
                [KeyValuePair.Create("a", ones(2)), KeyValuePair.Create("extra", ones(2))]);
            string index = Path.Combine(folder, ShardedSafetensors.IndexFileName);
            File.WriteAllText(index, """{"metadata":{},"weight_map":{"a":"s1.safetensors"}}""");
            var e = Assert.Throws<QuantoFormatException>(() => ShardedSafetensors.Load(index))!;
            Assert.That(e.Message, Does.Contain("'extra'").And.Contain("s1.safetensors"));
            File.WriteAllText(index, """{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}}""");
            e = Assert.Throws<QuantoFormatException>(() => ShardedSafetensors.Load(index))!;
            Assert.That(e.Message, Does.Contain("s2.safetensors").And.Contain("does not exist"));
            File.WriteAllText(index, """{"weight_map":{"a":"../etc/passwd"}}""");
            Assert.Throws<QuantoFormatException>(() => ShardedSafetensors.Load(index));
        }
        finally
        {
            Directory.Delete(folder, true);
        }
    }

    [Test]
    public void ChecksumsAreStoredAsMetadataAndHiddenOnLoad()
    {
        using var scope = NewDisposeScope();
        using var stream = new MemoryStream();
        Safetensors.Write(stream, [KeyValuePair.Create("x", ones(3))],
            new Dictionary<string, string> { ["author"] = "me" });
        string json = HeaderJson(stream.ToArray());
        Assert.That(json, Does.Contain("\"quanto_checksums\":"));
        using StateDict back = Safetensors.Load(stream, "mem");
        Assert.That(back.Metadata.Keys, Is.EquivalentTo(new[] { "author", "format" }));
        Assert.That(Encoding.UTF8.GetString(stream.ToArray()), Does.Contain("\"author\":\"me\""));
    }
}
