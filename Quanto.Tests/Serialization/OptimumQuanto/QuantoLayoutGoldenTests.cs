using NUnit.Framework;
using Quanto.Serialization;
using Quanto.Tensors;
using static Quanto.Tests.Serialization.SerializationTestUtil;
using static TorchSharp.torch;

namespace Quanto.Tests.Serialization;

/// <summary>
/// Files laid out by hand as optimum-quanto writes them (QUANTO-NOTES.md: keys, PackedTensor bit planes, per-channel
/// shapes), with the dequantized values worked out here, independently of the code under test.
/// </summary>
public class QuantoLayoutGoldenTests
{
    private static StateDict Load(string header, byte[] data)
    {
        var stream = new MemoryStream(SafetensorsBytes(header, data));
        return Safetensors.Load(stream, "golden.safetensors");
    }

    private static void AssertValues(Tensor actual, long[] shape, float[] expected)
    {
        Assert.That(actual.shape, Is.EqualTo(shape));
        Assert.That(actual.dtype, Is.EqualTo(ScalarType.Float32));
        Assert.That(Floats(actual), Is.EqualTo(expected));
    }

    [Test]
    public void Int8Linear()
    {
        string header = """{"fc.weight._data":{"dtype":"I8","shape":[2,3],"data_offsets":[8,14]},"fc.weight._scale":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]}}""";
        using StateDict dict = Load(header, Concat(F32(0.5f, 0.25f), [1, 0xFE, 3, 127, 0, 0x80]));
        using QuantizedWeight w = QuantizedWeightState.Read(dict, "fc", QType.QInt8, [2, 3]);
        using Tensor values = w.Dequantize();
        AssertValues(values, [2, 3], [0.5f, -1f, 1.5f, 31.75f, 0f, -32f]);
        Assert.DoesNotThrow(dict.ThrowIfUnconsumed);
    }

    [Test]
    public void Float8E4M3FnConv2dPerChannel()
    {
        // e4m3fn codes: 0x38 = 1, 0x40 = 2, 0xB8 = -1, 0x30 = 0.5, 0x3C = 1.5, 0x7E = 448, 0xC0 = -2. Scale (out,1,1,1).
        string header = """{"c.weight._scale":{"dtype":"F32","shape":[2,1,1,1],"data_offsets":[0,8]},"c.weight._data":{"dtype":"F8_E4M3","shape":[2,1,2,2],"data_offsets":[8,16]}}""";
        using StateDict dict = Load(header, Concat(F32(2f, 0.5f), [0x38, 0x40, 0xB8, 0x30, 0x00, 0x3C, 0x7E, 0xC0]));
        using QuantizedWeight w = QuantizedWeightState.Read(dict, "c", QType.QFloat8E4M3Fn, [2, 1, 2, 2]);
        using Tensor values = w.Dequantize();
        AssertValues(values, [2, 1, 2, 2], [2f, 4f, -2f, 1f, 0f, 0.75f, 224f, -1f]);
    }

    [Test]
    public void Float8E5M2AndE4M3FnuzLinear()
    {
        // e5m2: 0x3C = 1, 0x3E = 1.5, 0xC0 = -2. e4m3fnuz (bias 8): 0x40 = 1, 0x44 = 1.5, 0xC8 = -2.
        foreach (var (qtype, dtype, codes) in new[]
        {
            (QType.QFloat8E5M2, "F8_E5M2", new byte[] { 0x3C, 0x3E, 0xC0 }),
            (QType.QFloat8E4M3Fnuz, "F8_E4M3FNUZ", new byte[] { 0x40, 0x44, 0xC8 }),
        })
        {
            string header = "{\"l.weight._scale\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[0,4]}," +
                "\"l.weight._data\":{\"dtype\":\"" + dtype + "\",\"shape\":[1,3],\"data_offsets\":[4,7]}}";
            using StateDict dict = Load(header, Concat(F32(4f), codes));
            using QuantizedWeight w = QuantizedWeightState.Read(dict, "l", qtype, [1, 3]);
            using Tensor values = w.Dequantize();
            AssertValues(values, [1, 3], [4f, 6f, -8f]);
        }
    }

    [Test]
    public void Int4LinearPerChannelPackedInTwoBitPlanes()
    {
        // codes (3 rows x 4): r = ceil(3/2) = 2 packed rows; byte(j, c) = code(j, c) | code(j + 2, c) << 4.
        // row0 [0,15,7,8], row1 [1,2,3,4], row2 [15,0,14,1] -> packed row0 [F0,0F,E7,18], row1 [01,02,03,04].
        string header = """{"fc.weight._scale":{"dtype":"F32","shape":[3,1],"data_offsets":[0,12]},"fc.weight._shift":{"dtype":"F32","shape":[3,1],"data_offsets":[12,24]},"fc.weight._data._data":{"dtype":"U8","shape":[2,4],"data_offsets":[24,32]}}""";
        byte[] data = Concat(F32(0.5f, 0.25f, 2f), F32(1f, -0.5f, 3f), [0xF0, 0x0F, 0xE7, 0x18, 1, 2, 3, 4]);
        using StateDict dict = Load(header, data);
        using QuantizedWeight w = QuantizedWeightState.Read(dict, "fc", QType.QInt4, [3, 4]);
        Assert.That(((WeightQBitsTensor)w).IsPerChannel, Is.True);
        using Tensor values = w.Dequantize(); // q * scale - shift
        AssertValues(values, [3, 4], [-1f, 6.5f, 2.5f, 3f, 0.75f, 1f, 1.25f, 1.5f, 27f, -3f, 25f, -1f]);
    }

    [Test]
    public void Int2Conv2dPerChannelKeepsTheWeightShapeWithDimZeroPacked()
    {
        // Weight [5,1,2,2]: rows of 4 <= 128, so per channel (group_size None): packed [ceil(5/4) = 2, 1, 2, 2],
        // scale and shift [5,1,1,1]. code(r, c) = (r + c) % 4; packed row j holds rows j, j+2, j+4 at bits 0, 2, 4.
        // j=0: rows [0,1,2,3],[2,3,0,1],[0,1,2,3] -> 08 1D 22 37; j=1: rows [1,2,3,0],[3,0,1,2] -> 0D 02 07 08.
        string header = """{"k.weight._scale":{"dtype":"F32","shape":[5,1,1,1],"data_offsets":[0,20]},"k.weight._shift":{"dtype":"F32","shape":[5,1,1,1],"data_offsets":[20,40]},"k.weight._data._data":{"dtype":"U8","shape":[2,1,2,2],"data_offsets":[40,48]}}""";
        float[] scale = [1f, 0.5f, 0.25f, 2f, 4f], shift = [0f, 1f, 0f, 0f, -1f];
        byte[] data = Concat(F32(scale), F32(shift), [0x08, 0x1D, 0x22, 0x37, 0x0D, 0x02, 0x07, 0x08]);
        using StateDict dict = Load(header, data);
        using QuantizedWeight w = QuantizedWeightState.Read(dict, "k", QType.QInt2, [5, 1, 2, 2]);
        using Tensor values = w.Dequantize();
        float[] expected = Enumerable.Range(0, 20)
            .Select(i => (i / 4 + i % 4) % 4 * scale[i / 4] - shift[i / 4]).ToArray();
        AssertValues(values, [5, 1, 2, 2], expected);
    }

    [Test]
    public void Int4Conv2dGroupedFallsBackToGroupNinetySix()
    {
        // Weight [4,64,3,3]: rows of 576; 128 does not divide 576, 96 does -> 24 groups of 96, packed [12, 96],
        // scale/shift [24, 1]. code(g, c) = (7g + c) % 16; byte(j, c) = code(j, c) | code(j + 12, c) << 4.
        var packed = new byte[12 * 96];
        for (int j = 0; j < 12; j++)
        {
            for (int c = 0; c < 96; c++)
                packed[j * 96 + c] = (byte)(((7 * j + c) % 16) | (((7 * (j + 12) + c) % 16) << 4));
        }
        float[] scale = Enumerable.Range(0, 24).Select(g => MathF.Pow(2, -(g % 4))).ToArray();
        float[] shift = Enumerable.Range(0, 24).Select(g => g * 0.5f).ToArray();
        string header = """{"c.weight._scale":{"dtype":"F32","shape":[24,1],"data_offsets":[0,96]},"c.weight._shift":{"dtype":"F32","shape":[24,1],"data_offsets":[96,192]},"c.weight._data._data":{"dtype":"U8","shape":[12,96],"data_offsets":[192,1344]}}""";
        using StateDict dict = Load(header, Concat(F32(scale), F32(shift), packed));
        using QuantizedWeight w = QuantizedWeightState.Read(dict, "c", QType.QInt4, [4, 64, 3, 3]);
        Assert.That(((WeightQBitsTensor)w).GroupSize, Is.EqualTo(96));
        using Tensor values = w.Dequantize();
        float[] expected = Enumerable.Range(0, 2304)
            .Select(e => (7 * (e / 96) + e % 96) % 16 * scale[e / 96] - shift[e / 96]).ToArray();
        AssertValues(values, [4, 64, 3, 3], expected);
    }

    [Test]
    public void ShapeMismatchAgainstTheModelNamesTheKeyAndBothShapes()
    {
        string header = """{"fc.weight._data":{"dtype":"I8","shape":[2,3],"data_offsets":[8,14]},"fc.weight._scale":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]}}""";
        using StateDict dict = Load(header, Concat(F32(0.5f, 0.25f), [1, 2, 3, 4, 5, 6]));
        var e = Assert.Throws<QuantoFormatException>(() => QuantizedWeightState.Read(dict, "fc", QType.QInt8, [3, 2]))!;
        Assert.That(e.Message, Is.EqualTo(
            "golden.safetensors: shape mismatch for 'fc.weight._data': the file holds [2, 3], the model expects [3, 2]."));
        var missing = Assert.Throws<QuantoFormatException>(
            () => QuantizedWeightState.Read(dict, "fc", QType.QInt4, [2, 3]))!;
        Assert.That(missing.Message, Does.Contain("missing key 'fc.weight._data._data'"));
        var dtype = Assert.Throws<QuantoFormatException>(
            () => QuantizedWeightState.Read(dict, "fc", QType.QFloat8E5M2, [2, 3]))!;
        Assert.That(dtype.Message, Does.Contain("dtype mismatch for 'fc.weight._data'"));
    }
}
