using System.Text.Json.Nodes;
using MessagePack;
using NUnit.Framework;
using Quanto.Serialization;
using static Quanto.Tests.Serialization.SerializationTestUtil;
using static TorchSharp.torch;

namespace Quanto.Tests.Serialization;

public class QntPackageTests
{
    private static byte[] SmallPackage()
    {
        using var package = new QntPackage();
        package.Metadata["model"] = "tiny";
        package.QuantizationMap.Add("fc", new QuantizationSpec(QType.QInt8, QType.QFloat8E4M3Fn));
        Tensor data = tensor(new sbyte[] { 1, -2, 3, 4 }, [2, 2]), scale = tensor(new[] { 0.5f, 0.25f }, [2, 1]);
        package.Add(new QntTensor("fc.weight._data", data, QType.QInt8, 0, null, [2, 2]));
        package.Add(new QntTensor("fc.weight._scale", scale, QType.QInt8, 0, null, [2, 2]));
        package.Add("fc.bias", tensor(new[] { 1f, -1f }));
        using var stream = new MemoryStream();
        package.Write(stream);
        return stream.ToArray();
    }

    [Test]
    public void IsSelfDescribingMessagePack()
    {
        // Decoded by MessagePack's own JSON converter, independently of our reader.
        var root = JsonNode.Parse(MessagePackSerializer.ConvertToJson(SmallPackage()))!.AsObject();
        Assert.That(root.Select(p => p.Key),
            Is.EqualTo(new[] { "magic", "version", "metadata", "qmap", "header_checksum", "tensors" }));
        Assert.That((string)root["magic"]!, Is.EqualTo("quanto.qnt"));
        Assert.That(root["version"]!.AsArray().Select(n => (int)n!), Is.EqualTo(new[] { 1, 0 }));
        Assert.That((string)root["qmap"]!["fc"]!["activations"]!, Is.EqualTo("qfloat8_e4m3fn"));
        var first = root["tensors"]![0]!.AsObject();
        Assert.That(first.Select(p => p.Key), Is.EqualTo(new[]
            { "name", "dtype", "shape", "qtype", "axis", "group_size", "weight_shape", "checksum", "data" }));
        Assert.That((string)first["name"]!, Is.EqualTo("fc.weight._data"));
        Assert.That((string)first["dtype"]!, Is.EqualTo("I8"));
        Assert.That((string)first["qtype"]!, Is.EqualTo("qint8"));
        Assert.That((int)first["axis"]!, Is.EqualTo(0));
        Assert.That(first["group_size"], Is.Null);
        var bias = root["tensors"]![2]!.AsObject();
        Assert.That(bias["qtype"], Is.Null);
        // The raw bytes are a MessagePack bin (ConvertToJson writes bins as base64).
        Assert.That(Convert.FromBase64String((string)first["data"]![0]!), Is.EqualTo(new byte[] { 1, 0xFE, 3, 4 }));
    }

    [Test]
    public void RoundTripsTensorsMetadataAndMap()
    {
        using QntPackage back = QntPackage.Read(SmallPackage(), "small.qnt");
        Assert.That(back.FormatVersion, Is.EqualTo(new Version(1, 0)));
        Assert.That(back.Metadata["model"], Is.EqualTo("tiny"));
        Assert.That(back.QuantizationMap["fc"], Is.EqualTo(new QuantizationSpec(QType.QInt8, QType.QFloat8E4M3Fn)));
        Assert.That(back.Tensors.Keys, Is.EqualTo(new[] { "fc.weight._data", "fc.weight._scale", "fc.bias" }));
        Assert.That(Floats(back.Tensors["fc.bias"].Tensor), Is.EqualTo(new[] { 1f, -1f }));
        using var w = back.ReadWeight("fc");
        using Tensor values = w.Dequantize();
        Assert.That(Floats(values), Is.EqualTo(new[] { 0.5f, -1f, 0.75f, 1f }));
        using StateDict dict = back.ToStateDict();
        Assert.That(dict.Tensors.Keys, Is.EqualTo(back.Tensors.Keys));
    }

    [Test]
    public void NewerMajorVersionIsAClearError()
    {
        byte[] file = SmallPackage();
        // "version" is followed by fixarray(2) [1, 0]; the positive fixint 1 is the byte 0x01 right after 0x92.
        int at = IndexOf(file, [0xA7, .. "version"u8.ToArray(), 0x92]) + 9;
        Assert.That(file[at], Is.EqualTo(1));
        file[at] = 2;
        var e = Assert.Throws<QuantoFormatException>(() => QntPackage.Read(file, "new.qnt"))!;
        Assert.That(e.Message, Does.Contain("format version 2.0 is newer than this reader supports (1.x)"));
        file[at] = 1;
        file[at + 1] = 7; // a newer minor version reads fine
        using QntPackage minor = QntPackage.Read(file, "minor.qnt");
        Assert.That(minor.FormatVersion, Is.EqualTo(new Version(1, 7)));
    }

    [Test]
    public void ChecksumMismatchIsDetected()
    {
        byte[] file = SmallPackage();
        int at = IndexOf(file, [0xC4, 4, 1, 0xFE, 3, 4]); // bin8 of length 4 holding the int8 codes
        file[at + 3] = 0x7F;
        var e = Assert.Throws<QuantoFormatException>(() => QntPackage.Read(file, "bad.qnt"))!;
        Assert.That(e.Message, Is.EqualTo(
            "bad.qnt: checksum mismatch for tensor 'fc.weight._data': the data or its description is corrupted."));
    }

    [Test]
    public void MalformedPackagesAreFormatErrors()
    {
        byte[] file = SmallPackage();
        Assert.That(Fails(file[..^5]), Does.Contain("truncated"));
        Assert.That(Fails([.. file, 0xC0]), Does.Contain("1 unexpected bytes after the package"));
        Assert.That(Fails("not a package"u8.ToArray()), Does.Contain("not a .qnt package"));
        Assert.That(Fails([]), Does.Contain("truncated"));
        // 32-bit lengths and counts of 2^31 or more (MessagePack 2.5 turns them negative).
        Assert.That(Fails([0x86, 0xDB, 0xFF, 0xFF, 0xFF, 0xFF, .. new byte[16]]), Does.Contain("runs past the end"));
        byte[] hugeArray = [0x86, 0xA5, .. "magic"u8.ToArray(), 0xAA, .. "quanto.qnt"u8.ToArray(),
            0xA7, .. "version"u8.ToArray(), 0xDD, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
        Assert.That(Fails(hugeArray), Does.Contain("bad.qnt"));
        int magic = IndexOf(file, "quanto.qnt"u8.ToArray());
        file[magic] = (byte)'Q';
        Assert.That(Fails(file), Does.Contain("magic"));
    }

    [Test]
    public void UnknownQTypeNameInTheMapIsAClearError()
    {
        byte[] file = SmallPackage();
        int at = IndexOf(file, "qfloat8_e4m3fn"u8.ToArray());
        file[at + 7] = (byte)'9'; // "qfloat89e4m3fn"
        Assert.That(Fails(file), Does.Contain("module 'fc': unknown activations qtype 'qfloat89e4m3fn'"));
    }

    [Test]
    public void LoadsFromDiskThroughAMemoryMap()
    {
        string folder = NewFolder();
        try
        {
            string path = Path.Combine(folder, "m.qnt");
            File.WriteAllBytes(path, SmallPackage());
            using QntPackage back = QntPackage.Load(path);
            Assert.That(back.Tensors.Count, Is.EqualTo(3));
            File.WriteAllBytes(path, []);
            var e = Assert.Throws<QuantoFormatException>(() => QntPackage.Load(path))!;
            Assert.That(e.FilePath, Is.EqualTo(path));
        }
        finally
        {
            Directory.Delete(folder, true);
        }
    }

    private static string Fails(byte[] file)
    {
        var e = Assert.Throws<QuantoFormatException>(() => QntPackage.Read(file, "bad.qnt").Dispose())!;
        Assert.That(e.Message, Does.StartWith("bad.qnt: "));
        return e.Message;
    }

    private static int IndexOf(byte[] haystack, byte[] needle)
    {
        int at = haystack.AsSpan().IndexOf(needle);
        Assert.That(at, Is.GreaterThanOrEqualTo(0), "pattern not found");
        return at;
    }
}
