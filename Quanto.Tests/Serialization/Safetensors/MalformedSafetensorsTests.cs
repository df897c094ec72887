using System.Buffers.Binary;
using NUnit.Framework;
using Quanto.Serialization;
using static Quanto.Tests.Serialization.SerializationTestUtil;
using static TorchSharp.torch;

namespace Quanto.Tests.Serialization;

/// <summary>Each malformed input gives a QuantoFormatException naming the file and the problem.</summary>
public class MalformedSafetensorsTests
{
    private const string Name = "bad.safetensors";

    private static readonly string ValidHeader =
        """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I8","shape":[4],"data_offsets":[8,12]}}""";

    private static byte[] ValidData => Concat(F32(1, 2), [1, 2, 3, 4]);

    private static QuantoFormatException Fails(byte[] file)
    {
        using var stream = new MemoryStream(file);
        var e = Assert.Throws<QuantoFormatException>(
            () => Safetensors.Load(stream, Name).Dispose())!;
        Assert.That(e.FilePath, Is.EqualTo(Name));
        Assert.That(e.Message, Does.StartWith(Name + ": "));
        return e;
    }

    [Test]
    public void TheValidBaseLoads()
    {
        using var stream = new MemoryStream(SafetensorsBytes(ValidHeader, ValidData));
        using StateDict dict = Safetensors.Load(stream, Name);
        Assert.That(dict.Count, Is.EqualTo(2));
    }

    [Test]
    public void TruncatedInTheData() =>
        Assert.That(Fails(SafetensorsBytes(ValidHeader, ValidData)[..^3]).Message, Does.Contain("run past the end"));

    [Test]
    public void ShorterThanTheLengthPrefix() =>
        Assert.That(Fails([1, 0, 0]).Message, Does.Contain("truncated").And.Contain("3 bytes"));

    [Test]
    public void HeaderLengthLargerThanTheFile()
    {
        byte[] file = SafetensorsBytes(ValidHeader, ValidData);
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)file.Length);
        Assert.That(Fails(file).Message, Does.Contain($"header length {file.Length} is larger than the file"));
        BinaryPrimitives.WriteUInt64LittleEndian(file, ulong.MaxValue);
        Assert.That(Fails(file).Message, Does.Contain("exceeds"));
    }

    [Test]
    public void HeaderNotJson()
    {
        Assert.That(Fails(SafetensorsBytes("{\"a\": oops}", [])).Message, Does.Contain("not valid JSON"));
        Assert.That(Fails(SafetensorsBytes("[1, 2, 3]", [])).Message, Does.Contain("not a JSON object"));
        Assert.That(Fails(SafetensorsBytes("{\"a\":1} trailing", [])).Message, Does.Contain("not valid JSON"));
    }

    [Test]
    public void OffsetsOverlapping()
    {
        string header = """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I8","shape":[4],"data_offsets":[4,8]}}""";
        Assert.That(Fails(SafetensorsBytes(header, F32(1, 2))).Message,
            Does.Contain("'a' [0, 8) and 'b' [4, 8) overlap"));
    }

    [Test]
    public void OffsetsOutOfRangeOrLeavingGaps()
    {
        string outside = """{"a":{"dtype":"I8","shape":[4],"data_offsets":[100,104]}}""";
        Assert.That(Fails(SafetensorsBytes(outside, [1, 2, 3, 4])).Message, Does.Contain("run past the end"));
        string gap = """{"a":{"dtype":"I8","shape":[2],"data_offsets":[2,4]}}""";
        Assert.That(Fails(SafetensorsBytes(gap, [1, 2, 3, 4])).Message, Does.Contain("[0, 2) belong to no tensor"));
        Assert.That(Fails(SafetensorsBytes(ValidHeader, Concat(ValidData, [9]))).Message,
            Does.Contain("1 bytes after the last tensor"));
        string reversed = """{"a":{"dtype":"I8","shape":[0],"data_offsets":[4,0]}}""";
        Assert.That(Fails(SafetensorsBytes(reversed, [1, 2, 3, 4])).Message, Does.Contain("begin <= end"));
    }

    [Test]
    public void DTypeAndShapeDisagreeingWithTheByteCount()
    {
        string header = """{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""";
        Assert.That(Fails(SafetensorsBytes(header, F32(1, 2))).Message,
            Does.Contain("tensor 'a': dtype F32 and shape [3] need 12 bytes, but data_offsets [0, 8] hold 8"));
        string huge = """{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}""";
        Assert.That(Fails(SafetensorsBytes(huge, F32(1, 2))).Message, Does.Contain("too large"));
        string negative = """{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""";
        Assert.That(Fails(SafetensorsBytes(negative, F32(1, 2))).Message, Does.Contain("non-negative integers"));
    }

    [Test]
    public void UnknownDType()
    {
        string header = """{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}""";
        Assert.That(Fails(SafetensorsBytes(header, F32(1, 2))).Message, Does.Contain("tensor 'a': unknown dtype 'C64'"));
    }

    [Test]
    public void MissingFieldsAndDuplicateKeys()
    {
        Assert.That(Fails(SafetensorsBytes("""{"a":{"dtype":"F32","shape":[2]}}""", F32(1, 2))).Message,
            Does.Contain("tensor 'a': missing 'data_offsets'"));
        string twice = """{"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"I8","shape":[1],"data_offsets":[1,2]}}""";
        Assert.That(Fails(SafetensorsBytes(twice, [1, 2])).Message, Does.Contain("'a' twice"));
        Assert.That(Fails(SafetensorsBytes("""{"__metadata__":{"k":1}}""", [])).Message, Does.Contain("not a string"));
    }

    [Test]
    public void MissingKeyExtraKeyAndShapeMismatchAgainstTheModel()
    {
        using var stream = new MemoryStream(SafetensorsBytes(ValidHeader, ValidData));
        using StateDict dict = Safetensors.Load(stream, Name);
        var missing = Assert.Throws<QuantoFormatException>(() => dict.Take("fc.weight"))!;
        Assert.That(missing.Message, Is.EqualTo($"{Name}: missing key 'fc.weight' (2 keys present)."));
        var shape = Assert.Throws<QuantoFormatException>(() => dict.Take("a", [2, 1]))!;
        Assert.That(shape.Message, Is.EqualTo(
            $"{Name}: shape mismatch for 'a': the file holds [2], the model expects [2, 1]."));
        var dtype = Assert.Throws<QuantoFormatException>(() => dict.Take("b", [4], ScalarType.Byte))!;
        Assert.That(dtype.Message, Does.Contain("dtype mismatch for 'b': the file holds I8, expected U8"));
        dict.Take("a");
        var extra = Assert.Throws<QuantoFormatException>(dict.ThrowIfUnconsumed)!;
        Assert.That(extra.Message, Is.EqualTo($"{Name}: 1 unexpected key(s) not used by the model: 'b'."));
        dict.Take("b");
        Assert.DoesNotThrow(dict.ThrowIfUnconsumed);
    }

    [Test]
    public void ChecksumMismatchWhenDataIsCorrupted()
    {
        using var stream = new MemoryStream();
        Safetensors.Write(stream, [KeyValuePair.Create("w", ones(4))]);
        byte[] file = stream.ToArray();
        file[^5] ^= 0x01;
        Assert.That(Fails(file).Message, Does.Contain("checksum mismatch for tensor 'w'"));
    }

    [Test]
    public void MissingFileIsNotAFormatError()
    {
        string path = Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N") + ".safetensors");
        Assert.Throws<FileNotFoundException>(() => Safetensors.Load(path));
    }
}
