using System.Globalization;
using System.Text;
using NUnit.Framework;
using Quanto.Nn;
using Quanto.Serialization;
using Quanto.Tests.TestSupport;
using static Quanto.Tests.Serialization.SerializationTestUtil;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Serialization;

/// <summary>
/// A checkpoint "written by optimum-quanto" for fc: Linear(4, 3) (qint4 weights, per channel: rows of 4 &lt;= 128)
/// and head: Linear(3, 2) (qint8 weights, qint8 activations, calibrated), laid out by hand from the documented
/// format (QUANTO-NOTES.md: keys, dtypes, PackedTensor bit planes, scalar scales, quanto_qmap.json). The expected
/// weights and forward output are worked out here in double precision, independently of the library.
/// </summary>
public class ModelOptimumQuantoGoldenTests : TempFolderTests
{
    private static readonly int[,] FcCodes = { { 0, 15, 7, 8 }, { 1, 2, 3, 4 }, { 15, 0, 14, 1 } };
    private static readonly float[] FcScale = [0.125f, 0.25f, 0.0625f];
    private static readonly float[] FcShift = [1f, 0.5f, 0.25f];
    private static readonly float[] FcBias = [0.5f, -0.25f, 0f];
    private static readonly sbyte[,] HeadCodes = { { 64, -32, 127 }, { -128, 16, 0 } };
    private static readonly float[] HeadScale = [1f / 64, 1f / 32];
    private static readonly float[] HeadBias = [0.25f, -0.5f];
    private const float HeadInputScale = 0.0625f;
    private const float HeadOutputScale = 0.125f;
    private static readonly float[,] Input = { { 0.5f, -1f, 0.25f, 2f }, { 1f, 0.5f, -0.5f, -2f } };

    /// <summary>int4 codes packed along dim 0: r = ceil(rows / 2); byte(j, c) = code(j, c) | code(j + r, c) &lt;&lt; 4.
    /// </summary>
    private static byte[] PackInt4(int[,] codes)
    {
        int rows = codes.GetLength(0), cols = codes.GetLength(1), r = (rows + 1) / 2;
        var packed = new byte[r * cols];
        for (int j = 0; j < r; j++)
        {
            for (int c = 0; c < cols; c++)
                packed[j * cols + c] = (byte)(codes[j, c] | (j + r < rows ? codes[j + r, c] << 4 : 0));
        }
        return packed;
    }

    /// <summary>The safetensors file as optimum-quanto's save_file writes it: __metadata__ {"format": "pt"}, tensors
    /// by descending element size then name, contiguous data.</summary>
    private static byte[] OptimumQuantoFile()
    {
        var tensors = new List<(string Name, string DType, long[] Shape, byte[] Data)>
        {
            ("fc.bias", "F32", [3], F32(FcBias)),
            ("fc.input_scale", "F32", [], F32(1f)),
            ("fc.output_scale", "F32", [], F32(1f)),
            ("fc.weight._scale", "F32", [3, 1], F32(FcScale)),
            ("fc.weight._shift", "F32", [3, 1], F32(FcShift)),
            ("head.bias", "F32", [2], F32(HeadBias)),
            ("head.input_scale", "F32", [], F32(HeadInputScale)),
            ("head.output_scale", "F32", [], F32(HeadOutputScale)),
            ("head.weight._scale", "F32", [2, 1], F32(HeadScale)),
            ("fc.weight._data._data", "U8", [2, 4], PackInt4(FcCodes)),
            ("head.weight._data", "I8", [2, 3], HeadCodes.Cast<sbyte>().Select(v => (byte)v).ToArray()),
        };
        var header = new StringBuilder("{\"__metadata__\":{\"format\":\"pt\"}");
        long offset = 0;
        foreach ((string name, string dtype, long[] shape, byte[] data) in tensors)
        {
            header.Append(CultureInfo.InvariantCulture,
                $",\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{string.Join(",", shape)}]," +
                $"\"data_offsets\":[{offset},{offset + data.Length}]}}");
            offset += data.Length;
        }
        header.Append('}');
        return SafetensorsBytes(header.ToString(), Concat(tensors.Select(t => t.Data).ToArray()));
    }

    private const string QMap = """
        {
          "fc": {"weights": "qint4", "activations": "none"},
          "head": {"weights": "qint8", "activations": "qint8"}
        }
        """;

    private static double[,] ExpectedFcWeight()
    {
        var w = new double[3, 4];
        for (int r = 0; r < 3; r++)
        {
            for (int c = 0; c < 4; c++) w[r, c] = FcCodes[r, c] * (double)FcScale[r] - FcShift[r];
        }
        return w;
    }

    private static double[,] ExpectedHeadWeight()
    {
        var w = new double[2, 3];
        for (int r = 0; r < 2; r++)
        {
            for (int c = 0; c < 3; c++) w[r, c] = HeadCodes[r, c] * (double)HeadScale[r];
        }
        return w;
    }

    private static double FakeQuantInt8(double x, double scale) => Math.Clamp(Math.Round(x / scale), -128, 127) * scale;

    /// <summary>head(relu(fc(x))): fc with its dequantized int4 weight; head's input and output fake-quantized to
    /// int8 with the calibrated scales (round half to even), its weight dequantized int8.</summary>
    private static double[,] ExpectedOutput()
    {
        double[,] wf = ExpectedFcWeight(), wh = ExpectedHeadWeight();
        var y = new double[2, 2];
        for (int n = 0; n < 2; n++)
        {
            var h = new double[3];
            for (int o = 0; o < 3; o++)
            {
                double s = FcBias[o];
                for (int i = 0; i < 4; i++) s += Input[n, i] * wf[o, i];
                h[o] = FakeQuantInt8(Math.Max(s, 0), HeadInputScale);
            }
            for (int o = 0; o < 2; o++)
            {
                double s = HeadBias[o];
                for (int i = 0; i < 3; i++) s += h[i] * wh[o, i];
                y[n, o] = FakeQuantInt8(s, HeadOutputScale);
            }
        }
        return y;
    }

    private static float[] Flat(double[,] values) => values.Cast<double>().Select(v => (float)v).ToArray();

    private static QModule Module(Module model, string path) =>
        Quantizer.QuantizedModules(model).Single(m => m.Path == path);

    [Test]
    public void RequantizesAFloatModelFromAnOptimumQuantoFile()
    {
        File.WriteAllBytes(Path.Combine(Folder, "model.safetensors"), OptimumQuantoFile());
        File.WriteAllText(Path.Combine(Folder, QuantizationMap.FileName), QMap);
        using var model = new TwoLayer();
        Quantizer.Requantize(model, Path.Combine(Folder, "model.safetensors"));

        QModule fc = Module(model, "fc"), head = Module(model, "head");
        Assert.That(fc.IsFrozen && head.IsFrozen, Is.True);
        Assert.That((fc.WeightQType, fc.ActivationQType), Is.EqualTo(((QType?)QType.QInt4, (QType?)null)));
        Assert.That((head.WeightQType, head.ActivationQType), Is.EqualTo(((QType?)QType.QInt8, (QType?)QType.QInt8)));
        using (Tensor w = fc.QuantizedWeight!.Dequantize())
            Assert.That(Floats(w), Is.EqualTo(Flat(ExpectedFcWeight())));
        using (Tensor w = head.QuantizedWeight!.Dequantize())
            Assert.That(Floats(w), Is.EqualTo(Flat(ExpectedHeadWeight())));
        Assert.That(Floats(fc.FloatBias!), Is.EqualTo(FcBias));
        Assert.That(Floats(head.input_scale), Is.EqualTo(new[] { HeadInputScale }));
        Assert.That(Floats(head.output_scale), Is.EqualTo(new[] { HeadOutputScale }));

        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor x = tensor(Input.Cast<float>().ToArray(), [2, 4]);
        float[] expected = Flat(ExpectedOutput());
        Assert.That(expected.Distinct().Count(), Is.GreaterThan(2), "a non-trivial expected output");
        Assert.That(Floats(model.forward(x)), Is.EqualTo(expected).Within(1e-6));
    }

    [Test]
    public void WhatWeWriteBackIsTheSameFileContent()
    {
        string theirs = Path.Combine(Folder, "theirs");
        Directory.CreateDirectory(theirs);
        File.WriteAllBytes(Path.Combine(theirs, "model.safetensors"), OptimumQuantoFile());
        File.WriteAllText(Path.Combine(theirs, QuantizationMap.FileName), QMap);
        using var model = new TwoLayer();
        model.LoadQuantized(theirs);
        string ours = Path.Combine(Folder, "ours.safetensors");
        model.SaveQuantized(ours);

        using StateDict expected = Safetensors.Load(Path.Combine(theirs, "model.safetensors"));
        using StateDict actual = Safetensors.Load(ours);
        Assert.That(actual.Tensors.Keys, Is.EquivalentTo(expected.Tensors.Keys));
        foreach ((string key, Tensor t) in expected)
            Assert.That(Identical(actual[key], t), Is.True, $"{key}: same dtype, shape and bytes");
        Assert.That(actual.Metadata["format"], Is.EqualTo("pt"));
        QuantizationMap map = QuantizationMap.Load(Path.Combine(Folder, QuantizationMap.FileName));
        Assert.That(map.ToJson(), Is.EqualTo(QuantizationMap.Parse(QMap).ToJson()));

        // The header a reference reader sees: dtypes and shapes as optimum-quanto writes them.
        string header = HeaderJson(File.ReadAllBytes(ours));
        Assert.That(header, Does.Contain("\"fc.weight._data._data\":{\"dtype\":\"U8\",\"shape\":[2,4]"));
        Assert.That(header, Does.Contain("\"head.input_scale\":{\"dtype\":\"F32\",\"shape\":[]"));
    }
}
