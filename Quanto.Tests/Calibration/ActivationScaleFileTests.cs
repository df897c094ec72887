using NUnit.Framework;
using Quanto.Nn;
using Quanto.Serialization;
using Quanto.Tests.Serialization;
using Quanto.Tests.TestSupport;
using static Quanto.Tests.Serialization.SerializationTestUtil;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.CalibrationChecks;

/// <summary>
/// The activation scales in files, read as optimum-quanto reads them (QUANTO-NOTES.md): a loaded scale is used as it
/// is, 1.0 included, and the output quantizer is re-attached on reload with the saved output_scale. So the output
/// scale we save must be the calibrated one even where streamlining stopped quantizing the output in memory, and
/// "calibrated or not" must be a flag, not the value 1.0.
/// </summary>
public sealed class ActivationScaleFileTests : TempFolderTests
{
    private static readonly float[] Input = [0.5f, -1.25f, 2f, 0.75f, -0.5f, 1.5f];

    private static double FakeQuantInt8(double x, double scale) =>
        Math.Clamp(Math.Round(x / scale, MidpointRounding.ToEven), -128, 127) * scale;

    [Test]
    public void TheStreamlinedLastLayerSavesItsCalibratedOutputScale()
    {
        using var model = Seeded.Create(() => Sequential(("head", Linear(3, 2))));
        model.eval();
        Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8);
        using Tensor x = tensor(Input, [2, 3]);
        Calibration calibration;
        using (calibration = new Calibration()) model.forward(x).Dispose();
        Assert.That(calibration.StreamlinedModules, Is.EqualTo(new[] { "head" }), "the last layer is streamlined");
        // One batch: the output scale optimum-quanto records is max |y| / 127 of that batch's (unquantized) output,
        // which is what our streamlined model returns for the same batch.
        double[] y;
        using (no_grad())
        using (Tensor output = model.forward(x))
            y = Reference.Values(output);
        double expected = y.Max(Math.Abs) / 127;

        string file = Path.Combine(Folder, "model.safetensors");
        QuantizedModel.Save(model, file);
        using (StateDict saved = Safetensors.Load(file))
        {
            float scale = saved["head.output_scale"].item<float>();
            Assert.That(scale, Is.EqualTo(expected).Within(expected * 1e-6), "the calibrated scale, not 1.0");
            // optimum-quanto re-attaches the output quantizer with that scale: outputs move by at most half a step,
            // they are not rounded to integers.
            foreach (double v in y) Assert.That(Math.Abs(FakeQuantInt8(v, scale) - v), Is.LessThanOrEqualTo(scale / 2));
        }

        // Our own reload keeps the streamlined output (the flag travels in our metadata).
        using var reloaded = Seeded.Create(() => Sequential(("head", Linear(3, 2))), seed: 7);
        Quantizer.Requantize(reloaded, file);
        reloaded.eval();
        using (no_grad())
        using (Tensor again = reloaded.forward(x))
            Assert.That(Reference.Values(again), Is.EqualTo(y).Within(1e-6));
    }

    [Test]
    public void AnUncalibratedOptimumQuantoW8A8FileRunsWithScaleOne()
    {
        // head: Linear(3, 2), qint8 weights and activations, input_scale = output_scale = 1.0 (saved uncalibrated).
        sbyte[,] codes = { { 64, -32, 127 }, { -128, 16, 1 } };
        float[] weightScale = [1f / 64, 1f / 32];
        float[] bias = [0.25f, -0.5f];
        WriteOptimumQuantoHead(codes, weightScale, bias, inputScale: 1f, outputScale: 1f);
        using var model = new Head();
        Quantizer.Requantize(model, Path.Combine(Folder, "model.safetensors"));
        model.eval();

        float[] input = [2.4f, -1.6f, 0.5f, 3.5f, -7.25f, 100f];
        var expected = new float[4];
        for (int n = 0; n < 2; n++)
        {
            for (int o = 0; o < 2; o++)
            {
                double s = bias[o];
                for (int i = 0; i < 3; i++) s += FakeQuantInt8(input[n * 3 + i], 1) * codes[o, i] * weightScale[o];
                expected[n * 2 + o] = (float)FakeQuantInt8(s, 1);
            }
        }
        using var noGrad = no_grad();
        using Tensor x = tensor(input, [2, 3]);
        using Tensor y = model.forward(x);
        Assert.That(Floats(y), Is.EqualTo(expected).Within(1e-6), "optimum-quanto quantizes with scale 1.0");
    }

    [Test]
    public void ACalibratedScaleOfExactlyOneIsKeptAndUsed()
    {
        using var model = Seeded.Create(() => Sequential(("fc", Linear(2, 2))));
        model.eval();
        Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8);
        var fc = Quantizer.QuantizedModules(model).Single();
        using Tensor x = tensor(new float[] { 127f, -3.5f }, [1, 2]); // max |x| / 127 = 1 exactly
        using (new Calibration(streamline: false)) model.forward(x).Dispose();
        Assert.That(fc.input_scale.item<float>(), Is.EqualTo(1f), "no value is reserved as a marker");
        using var noGrad = no_grad();
        Assert.DoesNotThrow(() => model.forward(x).Dispose());
    }

    [Test]
    public void OurUncalibratedFilesStayUncalibratedAfterReload()
    {
        using var model = Seeded.Create(() => new TwoLayer());
        model.eval();
        Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8);
        string file = Path.Combine(Folder, "model.safetensors");
        QuantizedModel.Save(model, file);
        using var reloaded = new TwoLayer();
        Quantizer.Requantize(reloaded, file);
        QModule fc = Quantizer.QuantizedModules(reloaded).First();
        Assert.That((fc.InputCalibrated, fc.OutputCalibrated), Is.EqualTo((false, false)));
        var error = Assert.Throws<InvalidOperationException>(() => reloaded.forward(ones(1, 4)))!;
        Assert.That(error.Message, Does.Contain("QLinear 'fc'").And.Contain("never calibrated"));
    }

    [TestCase("[]")]
    [TestCase("{\"fc\": {\"input\": \"sometimes\"}}")]
    [TestCase("{\"fc\": {\"weights\": \"uncalibrated\"}}")]
    [TestCase("{\"elsewhere\": {\"input\": \"uncalibrated\"}}")]
    [TestCase("{\"fc\": {\"input\": \"uncalibrated\", \"input\": \"uncalibrated\"}}")]
    [TestCase("{\"fc\": ")]
    public void MalformedScaleMetadataIsAFormatError(string json)
    {
        using var model = Seeded.Create(() => new TwoLayer());
        Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8);
        string file = Path.Combine(Folder, "model.safetensors");
        QuantizedModel.Save(model, file);
        using StateDict saved = Safetensors.Load(file);
        saved.Metadata["quanto_activation_scales"] = json;
        var error = Assert.Throws<QuantoFormatException>(() =>
            QuantizedModel.Load(model, saved, QuantizationMap.Load(Path.Combine(Folder, QuantizationMap.FileName))))!;
        Assert.That(error.Message, Does.Contain("quanto_activation_scales"));
    }

    private void WriteOptimumQuantoHead(sbyte[,] codes, float[] weightScale, float[] bias, float inputScale,
        float outputScale)
    {
        var tensors = new List<(string Name, string DType, long[] Shape, byte[] Data)>
        {
            ("head.bias", "F32", [2], F32(bias)),
            ("head.input_scale", "F32", [], F32(inputScale)),
            ("head.output_scale", "F32", [], F32(outputScale)),
            ("head.weight._scale", "F32", [2, 1], F32(weightScale)),
            ("head.weight._data", "I8", [2, 3], codes.Cast<sbyte>().Select(v => (byte)v).ToArray()),
        };
        File.WriteAllBytes(Path.Combine(Folder, "model.safetensors"), HandBuiltFile(tensors.ToArray()));
        File.WriteAllText(Path.Combine(Folder, QuantizationMap.FileName),
            "{\n    \"head\": {\n        \"weights\": \"qint8\",\n        \"activations\": \"qint8\"\n    }\n}");
    }

    private sealed class Head : Module<Tensor, Tensor>
    {
        private readonly Module<Tensor, Tensor> head;

        public Head() : base(nameof(Head))
        {
            head = Linear(3, 2);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => head.forward(x);
    }
}
