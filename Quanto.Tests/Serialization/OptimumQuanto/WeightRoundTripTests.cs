using System.Text.Json.Nodes;
using NUnit.Framework;
using Quanto.Quantization;
using Quanto.Serialization;
using Quanto.Tensors;
using static Quanto.Tests.Serialization.SerializationTestUtil;
using static TorchSharp.torch;

namespace Quanto.Tests.Serialization;

/// <summary>Every qtype, Linear and Conv2d shapes: save -> load gives bit-identical tensors and Dequantize().</summary>
public class WeightRoundTripTests
{
    private static readonly QType[] AllQTypes =
        [QType.QInt2, QType.QInt4, QType.QInt8, QType.QFloat8E4M3Fn, QType.QFloat8E5M2, QType.QFloat8E4M3Fnuz];

    // Linear per channel (in <= 128), Linear g128, Linear fallback g64, Conv2d per channel, Conv2d fallback g96.
    // (The quantizer only takes per-channel rows that are multiples of 8, so conv rows are 72 here; hand-built golden
    // files cover other row lengths.)
    private static readonly long[][] Shapes = [[6, 40], [4, 256], [5, 320], [8, 8, 3, 3], [4, 64, 3, 3]];

    private static IEnumerable<TestCaseData> Cases() =>
        from q in AllQTypes from s in Shapes
        select new TestCaseData(q, s).SetName($"{q}_{string.Join("x", s)}");

    private static QuantizedWeight QuantizeRandom(QType qtype, long[] shape, ScalarType dtype = ScalarType.Float32)
    {
        // No dispose scope here: it would free the returned weight's tensors too.
        using var generator = new TorchSharp.torch.Generator(1234);
        using Tensor w = randn(shape, generator: generator);
        using Tensor typed = w.to(dtype);
        return WeightQuantizer.Quantize(typed, qtype);
    }

    private static Tensor[] Parts(QuantizedWeight w) => w switch
    {
        WeightQBytesTensor b => [b.Data, b.Scale],
        WeightQBitsTensor b => [b.Packed, b.Scale, b.Shift],
        _ => throw new AssertionException("unknown weight type"),
    };

    private static void AssertSame(QuantizedWeight expected, QuantizedWeight actual)
    {
        Assert.That(actual.GetType(), Is.EqualTo(expected.GetType()));
        Assert.That(actual.QType, Is.EqualTo(expected.QType));
        Assert.That(actual.Shape.ToArray(), Is.EqualTo(expected.Shape.ToArray()));
        if (expected is WeightQBitsTensor e)
            Assert.That(((WeightQBitsTensor)actual).GroupSize, Is.EqualTo(e.GroupSize));
        Tensor[] a = Parts(actual), b = Parts(expected);
        for (int i = 0; i < a.Length; i++) Assert.That(Identical(a[i], b[i]), Is.True, $"part {i}");
        using Tensor da = actual.Dequantize(), db = expected.Dequantize();
        Assert.That(Identical(da, db), Is.True, "Dequantize()");
    }

    [TestCaseSource(nameof(Cases))]
    public void SafetensorsRoundTrip(QType qtype, long[] shape)
    {
        using QuantizedWeight original = QuantizeRandom(qtype, shape);
        using var stream = new MemoryStream();
        using (var dict = new StateDict())
        {
            QuantizedWeightState.Write(original, "model.layer", dict.Tensors);
            dict.Add("model.layer.bias", zeros(shape[0]));
            Safetensors.Write(stream, dict.Tensors);
        }
        using StateDict back = Safetensors.Load(stream, "rt.safetensors");
        using QuantizedWeight loaded = QuantizedWeightState.Read(back, "model.layer", qtype, shape);
        back.Take("model.layer.bias", [shape[0]]);
        back.ThrowIfUnconsumed();
        AssertSame(original, loaded);
    }

    [TestCaseSource(nameof(Cases))]
    public void QntRoundTrip(QType qtype, long[] shape)
    {
        using QuantizedWeight original = QuantizeRandom(qtype, shape);
        string folder = NewFolder();
        try
        {
            string path = Path.Combine(folder, "model.qnt");
            using (var package = new QntPackage())
            {
                package.AddWeight("layer", original);
                package.QuantizationMap.Add("layer", new QuantizationSpec(qtype, null));
                package.Save(path);
            }
            // A tiny map segment size forces tensor bytes across segment boundaries (the >2 GB code path).
            foreach (int segment in new[] { Quanto.Serialization.MappedSequence.SegmentBytes, 7 })
            {
                using QntPackage loaded = QntPackage.Load(path, segment);
                Assert.That(loaded.QuantizationMap["layer"], Is.EqualTo(new QuantizationSpec(qtype, null)));
                using QuantizedWeight weight = loaded.ReadWeight("layer", path);
                AssertSame(original, weight);
            }
        }
        finally
        {
            Directory.Delete(folder, true);
        }
    }

    [Test]
    public void HalfPrecisionAndZeroPointWeightsRoundTrip()
    {
        using QuantizedWeight bf16 = QuantizeRandom(QType.QInt4, [8, 256], ScalarType.BFloat16);
        using Tensor w = randn(8, 256);
        using QuantizedWeight zp = WeightQuantizer.Quantize(w, QType.QInt4, shiftMode: ShiftMode.ZeroPoint);
        foreach (QuantizedWeight original in new[] { bf16, zp })
        {
            using var stream = new MemoryStream();
            using (var dict = new StateDict())
            {
                QuantizedWeightState.Write(original, "x", dict.Tensors);
                Safetensors.Write(stream, dict.Tensors);
            }
            using StateDict back = Safetensors.Load(stream, "rt");
            using QuantizedWeight loaded = QuantizedWeightState.Read(back, "x", QType.QInt4, [8, 256]);
            AssertSame(original, loaded);
        }
    }

    [Test]
    public void WrittenFilesFollowTheOptimumQuantoLayout()
    {
        // Check what we write against the documented layout, parsing the header with plain JSON and re-packing the
        // codes with the PackedTensor formula written out here.
        using QuantizedWeight conv = QuantizeRandom(QType.QInt4, [5, 2, 2, 2]); // rows of 8: per channel
        using QuantizedWeight lin = QuantizeRandom(QType.QInt2, [3, 256]);      // g128, 6 groups
        using var stream = new MemoryStream();
        using (var dict = new StateDict())
        {
            QuantizedWeightState.Write(conv, "conv", dict.Tensors);
            QuantizedWeightState.Write(lin, "lin", dict.Tensors);
            Safetensors.Write(stream, dict.Tensors, checksums: false);
        }
        byte[] file = stream.ToArray();
        var header = JsonNode.Parse(HeaderJson(file))!.AsObject();
        Assert.That(header.Select(p => p.Key).Order(), Is.EqualTo(new[]
        {
            "__metadata__", "conv.weight._data._data", "conv.weight._scale", "conv.weight._shift",
            "lin.weight._data._data", "lin.weight._scale", "lin.weight._shift",
        }));
        AssertEntry(header, "conv.weight._data._data", "U8", [3, 2, 2, 2]);
        AssertEntry(header, "conv.weight._scale", "F32", [5, 1, 1, 1]);
        AssertEntry(header, "conv.weight._shift", "F32", [5, 1, 1, 1]);
        AssertEntry(header, "lin.weight._data._data", "U8", [2, 128]);
        AssertEntry(header, "lin.weight._scale", "F32", [6, 1]);
        long dataStart = 8 + (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(file);
        var (convBits, linBits) = ((WeightQBitsTensor)conv, (WeightQBitsTensor)lin);
        Assert.That(Slice(file, dataStart, header, "conv.weight._data._data"), Is.EqualTo(PackByHand(convBits)));
        Assert.That(Slice(file, dataStart, header, "lin.weight._data._data"), Is.EqualTo(PackByHand(linBits)));
        Assert.That(Slice(file, dataStart, header, "lin.weight._scale"), Is.EqualTo(Bytes(linBits.Scale)));
    }

    [Test]
    public void NonDefaultGroupSizesAreRefusedForSafetensorsButKeptByQnt()
    {
        using Tensor source = randn(4, 256);
        using QuantizedWeight w = WeightQuantizer.Quantize(source, QType.QInt4, groupSize: 64);
        var dict = new Dictionary<string, Tensor>();
        var e = Assert.Throws<ArgumentException>(() => QuantizedWeightState.Write(w, "fc", dict))!;
        Assert.That(e.Message, Does.Contain("group size 64").And.Contain(".qnt"));
        using var package = new QntPackage();
        package.AddWeight("fc", w);
        using var stream = new MemoryStream();
        package.Write(stream);
        using QntPackage back = QntPackage.Read(stream.ToArray());
        using QuantizedWeight loaded = back.ReadWeight("fc");
        AssertSame(w, loaded);
    }

    private static void AssertEntry(JsonObject header, string key, string dtype, long[] shape)
    {
        Assert.That((string)header[key]!["dtype"]!, Is.EqualTo(dtype), key);
        Assert.That(header[key]!["shape"]!.AsArray().Select(n => (long)n!), Is.EqualTo(shape), key);
    }

    private static byte[] Slice(byte[] file, long dataStart, JsonObject header, string key)
    {
        var offsets = header[key]!["data_offsets"]!.AsArray().Select(n => (long)n!).ToArray();
        return file[(int)(dataStart + offsets[0])..(int)(dataStart + offsets[1])];
    }

    /// <summary>PackedTensor: r = ceil(rows / k); row i*r + j goes to bits [b*i, b*(i+1)) of packed row j.</summary>
    private static byte[] PackByHand(WeightQBitsTensor w)
    {
        using Tensor codesT = w.UnpackCodes();
        byte[] codes = Bytes(codesT);
        int rows = (int)codesT.shape[0], cols = (int)codesT.shape[1], bits = w.QType.Bits(), k = 8 / bits;
        int r = (rows + k - 1) / k;
        var packed = new byte[r * cols];
        for (int row = 0; row < rows; row++)
        {
            for (int c = 0; c < cols; c++)
                packed[row % r * cols + c] |= (byte)(codes[row * cols + c] << (bits * (row / r)));
        }
        return packed;
    }
}
