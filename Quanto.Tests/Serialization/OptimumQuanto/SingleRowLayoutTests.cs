using NUnit.Framework;
using Quanto.Quantization;
using Quanto.Serialization;
using Quanto.Tensors;
using Quanto.Tests.TestSupport;
using static Quanto.Tests.Serialization.SerializationTestUtil;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Serialization;

/// <summary>
/// Weights with one output row (a <c>Linear(d, 1)</c> value or logit head), which optimum-quanto quantizes per
/// tensor: its optimizers drop axis 0 when it has length 1 (symmetric_optimizer.py, affine_optimizer.py), so qint8 /
/// float8 scales are 0-d, and the int2 / int4 max optimizer then reduces over dim 0 only (max_optimizer.py), giving
/// one scale and shift per index of the last dimension. Files are laid out by hand from those formulas; expected
/// values are worked out here (dequantized = q * scale - shift, broadcast as torch does).
/// </summary>
public class SingleRowLayoutTests : TempFolderTests
{
    private static StateDict Load(params (string Name, string DType, long[] Shape, byte[] Data)[] tensors)
    {
        var stream = new MemoryStream(HandBuiltFile(tensors));
        return Safetensors.Load(stream, "single-row.safetensors");
    }

    [Test]
    public void EightBitWeightsHaveAZeroDimensionalScale()
    {
        using (StateDict dict = Load(("fc.weight._data", "I8", [1, 3], [64, 0xE0, 127]), ("fc.weight._scale", "F32",
            [], F32(0.25f))))
        {
            using QuantizedWeight w = QuantizedWeightState.Read(dict, "fc", QType.QInt8, [1, 3]);
            using Tensor values = w.Dequantize();
            Assert.That(Floats(values), Is.EqualTo(new[] { 16f, -8f, 31.75f }));
            Assert.DoesNotThrow(dict.ThrowIfUnconsumed);
        }
        // e4m3fn codes 0x38 = 1, 0x40 = 2, 0xB8 = -1.
        using (StateDict dict = Load(("c.weight._data", "F8_E4M3", [1, 1, 1, 3], [0x38, 0x40, 0xB8]),
            ("c.weight._scale", "F32", [], F32(2f))))
        {
            using QuantizedWeight w = QuantizedWeightState.Read(dict, "c", QType.QFloat8E4M3Fn, [1, 1, 1, 3]);
            using Tensor values = w.Dequantize();
            Assert.That(Floats(values), Is.EqualTo(new[] { 2f, 4f, -2f }));
        }
    }

    [Test]
    public void FourBitLinearHasOneScaleAndShiftPerInputFeature()
    {
        // What optimum-quanto writes for w = [0.5, -1.25, 3, 0]: every column is its own range, so scale = 0 and
        // shift = -w (the codes, round(0 / 0), do not matter). And a general per-column file.
        float[] w = [0.5f, -1.25f, 3f, 0f];
        using (StateDict dict = Load(("h.weight._data._data", "U8", [1, 4], [0, 0, 0, 0]),
            ("h.weight._scale", "F32", [1, 4], F32(0f, 0f, 0f, 0f)),
            ("h.weight._shift", "F32", [1, 4], F32(w.Select(v => -v).ToArray()))))
        {
            using QuantizedWeight q = QuantizedWeightState.Read(dict, "h", QType.QInt4, [1, 4]);
            using Tensor values = q.Dequantize();
            Assert.That(Floats(values), Is.EqualTo(w));
        }
        float[] scale = [0.5f, 0.25f, 1f, 2f], shift = [1f, 0f, -1f, 0.5f];
        byte[] codes = [3, 15, 0, 7];
        using (StateDict dict = Load(("h.weight._data._data", "U8", [1, 4], codes),
            ("h.weight._scale", "F32", [1, 4], F32(scale)), ("h.weight._shift", "F32", [1, 4], F32(shift))))
        {
            using QuantizedWeight q = QuantizedWeightState.Read(dict, "h", QType.QInt4, [1, 4]);
            using Tensor values = q.Dequantize();
            Assert.That(Floats(values), Is.EqualTo(Enumerable.Range(0, 4).Select(i => codes[i] * scale[i] - shift[i])));
        }
    }

    [Test]
    public void TwoBitConvHasOneScaleAndShiftPerKernelColumn()
    {
        // Weight (1, 2, 2, 3): the optimizer reduces over dims 0..2, so scale and shift are (1, 1, 1, 3).
        byte[] codes = Enumerable.Range(0, 12).Select(i => (byte)(i * 7 % 4)).ToArray();
        float[] scale = [0.5f, 1f, 0.125f], shift = [0f, 1f, -2f];
        using StateDict dict = Load(("k.weight._data._data", "U8", [1, 2, 2, 3], codes),
            ("k.weight._scale", "F32", [1, 1, 1, 3], F32(scale)), ("k.weight._shift", "F32", [1, 1, 1, 3], F32(shift)));
        using QuantizedWeight q = QuantizedWeightState.Read(dict, "k", QType.QInt2, [1, 2, 2, 3]);
        using Tensor values = q.Dequantize();
        Assert.That(values.shape, Is.EqualTo(new long[] { 1, 2, 2, 3 }));
        float[] expected = Enumerable.Range(0, 12).Select(i => codes[i] * scale[i % 3] - shift[i % 3]).ToArray();
        Assert.That(Floats(values), Is.EqualTo(expected));
    }

    [Test]
    public void TheOneByOneScaleEarlierVersionsWroteStillLoads()
    {
        using StateDict dict = Load(("h.weight._data._data", "U8", [1, 4], [1, 2, 3, 4]),
            ("h.weight._scale", "F32", [1, 1], F32(0.5f)), ("h.weight._shift", "F32", [1, 1], F32(1f)));
        using QuantizedWeight q = QuantizedWeightState.Read(dict, "h", QType.QInt4, [1, 4]);
        using Tensor values = q.Dequantize();
        Assert.That(Floats(values), Is.EqualTo(new[] { -0.5f, 0f, 0.5f, 1f }));
    }

    [TestCase(QType.QInt8, new long[] { 1, 8 })]
    [TestCase(QType.QFloat8E5M2, new long[] { 1, 2, 3, 3 })]
    [TestCase(QType.QInt4, new long[] { 1, 8 })]
    [TestCase(QType.QInt2, new long[] { 1, 2, 3, 3 })]
    public void WritesTheLayoutOptimumQuantoWrites(QType qtype, long[] shape)
    {
        using Tensor weight = Seeded.Uniform(shape, 5);
        using QuantizedWeight original = WeightQuantizer.Quantize(weight, qtype);
        using var dict = new StateDict();
        QuantizedWeightState.Write(original, "h", dict.Tensors);
        bool packed = qtype.Info().IsPacked;
        long[] scaleShape = packed ? [.. Enumerable.Repeat(1L, shape.Length - 1), shape[^1]] : [];
        Assert.That(dict["h.weight._scale"].shape, Is.EqualTo(scaleShape));
        if (packed)
        {
            Assert.That(dict["h.weight._shift"].shape, Is.EqualTo(scaleShape));
            Assert.That(dict["h.weight._data._data"].shape, Is.EqualTo(shape), "one packed row keeps the weight shape");
        }
        // optimum-quanto's dequantization of those tensors (codes in the low bits of the single packed row).
        using Tensor expected = original.Dequantize();
        using Tensor theirs = packed
            ? dict["h.weight._data._data"].bitwise_and(qtype.Info().MaxCode).to(ScalarType.Float32)
                .mul(dict["h.weight._scale"]).sub(dict["h.weight._shift"])
            : dict["h.weight._data"].to(ScalarType.Float32).mul(dict["h.weight._scale"]);
        Assert.That(Floats(theirs), Is.EqualTo(Floats(expected)));
        using QuantizedWeight back = QuantizedWeightState.Read(dict, "h", qtype, shape);
        Assert.That(back.GetType(), Is.EqualTo(original.GetType()));
        if (back is WeightQBitsTensor bits) // equal per-column values come back as the one group written
            Assert.That(bits.GroupSize, Is.EqualTo(((WeightQBitsTensor)original).GroupSize));
        using Tensor values = back.Dequantize();
        Assert.That(Floats(values), Is.EqualTo(Floats(expected)));
    }

    [Test]
    public void APerColumnFileIsWrittenBackAsItWasRead()
    {
        byte[] codes = [3, 15, 0, 7, 9];
        float[] scale = [0.5f, 0.25f, 1f, 2f, 0f], shift = [1f, 0f, -1f, 0.5f, 4f];
        using StateDict dict = Load(("h.weight._data._data", "U8", [1, 5], codes),
            ("h.weight._scale", "F32", [1, 5], F32(scale)), ("h.weight._shift", "F32", [1, 5], F32(shift)));
        using QuantizedWeight q = QuantizedWeightState.Read(dict, "h", QType.QInt4, [1, 5]);
        using var written = new StateDict();
        QuantizedWeightState.Write(q, "h", written.Tensors);
        Assert.That(written.Tensors.Keys, Is.EquivalentTo(dict.Tensors.Keys));
        foreach ((string key, Tensor t) in dict)
            Assert.That(Identical(written[key], t), Is.True, $"{key}: same dtype, shape and bytes");
    }

    /// <summary>fc: Linear(4, 3) -> relu -> head: Linear(3, 1), the value-head model of the hand-built files.</summary>
    private sealed class ValueHead : Module<Tensor, Tensor>
    {
        private readonly Module<Tensor, Tensor> fc;
        private readonly Module<Tensor, Tensor> head;

        public ValueHead() : base(nameof(ValueHead))
        {
            fc = Linear(4, 3);
            head = Linear(3, 1);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => head.forward(functional.relu(fc.forward(x)));
    }

    [TestCase(QType.QInt8)]
    [TestCase(QType.QInt4)]
    public void AModelWithAValueHeadLoadsAnOptimumQuantoFileAndRunsIt(QType headQType)
    {
        // fc: qint8, scale (3, 1); head: the single-row form of headQType.
        sbyte[] fcCodes = [64, -32, 127, 5, -128, 16, 0, 1, 2, 100, -100, 50];
        float[] fcScale = [1f / 64, 1f / 32, 1f / 16], fcBias = [0.5f, -0.25f, 0f], headBias = [0.125f];
        int[] headCodes = [3, 15, 7];
        float[] headScale = [0.5f, 0.25f, 0.125f], headShift = [1f, 2f, -0.5f];
        var tensors = new List<(string, string, long[], byte[])>
        {
            ("fc.bias", "F32", [3], F32(fcBias)),
            ("fc.input_scale", "F32", [], F32(1f)),
            ("fc.output_scale", "F32", [], F32(1f)),
            ("fc.weight._scale", "F32", [3, 1], F32(fcScale)),
            ("head.bias", "F32", [1], F32(headBias)),
            ("head.input_scale", "F32", [], F32(1f)),
            ("head.output_scale", "F32", [], F32(1f)),
            ("fc.weight._data", "I8", [3, 4], fcCodes.Select(v => (byte)v).ToArray()),
        };
        double[] headWeight;
        if (headQType == QType.QInt8)
        {
            tensors.Add(("head.weight._scale", "F32", [], F32(0.25f)));
            tensors.Add(("head.weight._data", "I8", [1, 3], [8, 0xFC, 2]));
            headWeight = [8 * 0.25, -4 * 0.25, 2 * 0.25];
        }
        else
        {
            tensors.Add(("head.weight._scale", "F32", [1, 3], F32(headScale)));
            tensors.Add(("head.weight._shift", "F32", [1, 3], F32(headShift)));
            tensors.Add(("head.weight._data._data", "U8", [1, 3], headCodes.Select(c => (byte)c).ToArray()));
            headWeight = Enumerable.Range(0, 3)
                .Select(i => headCodes[i] * (double)headScale[i] - headShift[i]).ToArray();
        }
        File.WriteAllBytes(Path.Combine(Folder, "model.safetensors"), HandBuiltFile(tensors.ToArray()));
        var map = new QuantizationMap
        {
            { "fc", new QuantizationSpec(QType.QInt8, null) },
            { "head", new QuantizationSpec(headQType, null) },
        };
        map.Save(Path.Combine(Folder, QuantizationMap.FileName));
        using var model = new ValueHead();
        Quantizer.Requantize(model, Path.Combine(Folder, "model.safetensors"));

        float[,] x = { { 0.5f, -1f, 0.25f, 2f }, { 1f, 0.5f, -0.5f, -2f } };
        var expected = new float[2];
        for (int n = 0; n < 2; n++)
        {
            double y = headBias[0];
            for (int o = 0; o < 3; o++)
            {
                double h = fcBias[o];
                for (int i = 0; i < 4; i++) h += x[n, i] * fcCodes[o * 4 + i] * (double)fcScale[o];
                y += Math.Max(h, 0) * headWeight[o];
            }
            expected[n] = (float)y;
        }
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor output = model.forward(tensor(x.Cast<float>().ToArray(), [2, 4]));
        Assert.That(Floats(output), Is.EqualTo(expected).Within(1e-5));

        string again = Path.Combine(Folder, "again");
        Directory.CreateDirectory(again);
        model.SaveQuantized(Path.Combine(again, "model.safetensors"));
        using StateDict theirs = Safetensors.Load(Path.Combine(Folder, "model.safetensors"));
        using StateDict ours = Safetensors.Load(Path.Combine(again, "model.safetensors"));
        foreach ((string key, Tensor t) in theirs)
            Assert.That(Identical(ours[key], t), Is.True, $"{key}: written back as optimum-quanto wrote it");
    }
}
