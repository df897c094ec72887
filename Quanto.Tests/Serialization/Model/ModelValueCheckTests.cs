using NUnit.Framework;
using Quanto.Serialization;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Serialization;

/// <summary>
/// Values a checkpoint must not hold (issue 19): NaN, infinite or negative weight scales, NaN shifts and biases, zero,
/// NaN or negative activation scales, out-of-range zero-points and NaN float8 codes are refused at load with a
/// QuantoFormatException naming the file, the key and the value; a zero weight scale (what optimum-quanto writes
/// for a zero-range row or group) loads.
/// </summary>
public class ModelValueCheckTests : TempFolderTests
{
    private static Module<Tensor, Tensor> Build(long seed) =>
        Seeded.Create<Module<Tensor, Tensor>>(() => new Mlp(16, 8, 4), seed);

    /// <summary>A frozen, calibrated W(qtype)A8 model saved as model.safetensors; returns the file.</summary>
    private string Saved(QType qtype)
    {
        using Module<Tensor, Tensor> model = Build(1);
        Quantizer.Quantize(model, qtype, QType.QInt8);
        model.eval();
        using (var scope = NewDisposeScope())
        using (no_grad())
        using (new Calibration())
        {
            model.forward(Seeded.Uniform([4, 16], 3));
        }
        Quantizer.Freeze(model);
        string path = Path.Combine(Folder, "model.safetensors");
        model.SaveQuantized(path);
        return path;
    }

    /// <summary>Rewrites one tensor of the file (as a tool editing it would; our checksums are recomputed).</summary>
    private static void Replace(string path, string key, Func<Tensor, Tensor> change)
    {
        using StateDict dict = Safetensors.Load(path);
        Tensor old = dict.Tensors[key];
        dict.Tensors[key] = change(old);
        old.Dispose();
        Safetensors.Save(path, dict);
    }

    private static Tensor Set(Tensor t, float value)
    {
        Tensor copy = t.clone();
        copy.view(-1)[0] = value;
        return copy;
    }

    private static IEnumerable<TestCaseData> Cases()
    {
        yield return new TestCaseData(QType.QInt4, "fc1.weight._scale", float.NaN, "holds NaN at flat index 0");
        yield return new TestCaseData(QType.QInt4, "fc1.weight._scale", float.PositiveInfinity, "holds Infinity");
        yield return new TestCaseData(QType.QInt8, "fc2.weight._scale", -0.5f, "holds -0.5 at flat index 0");
        yield return new TestCaseData(QType.QInt4, "fc1.weight._shift", float.NaN, "a shift must be finite");
        yield return new TestCaseData(QType.QInt4, "fc1.bias", float.NaN, "it must be finite");
        yield return new TestCaseData(QType.QInt8, "fc1.input_scale", 0f, "holds 0 at flat index 0");
        yield return new TestCaseData(QType.QInt8, "fc1.input_scale", float.NaN, "must be finite and positive");
        yield return new TestCaseData(QType.QInt8, "fc2.output_scale", -1f, "holds -1 at flat index 0");
    }

    [TestCaseSource(nameof(Cases))]
    public void ABadValueIsRefusedNamingTheFileKeyAndValue(QType qtype, string key, float value, string expected)
    {
        string path = Saved(qtype);
        Replace(path, key, t => Set(t, value));
        using Module<Tensor, Tensor> fresh = Build(2);
        var e = Assert.Throws<QuantoFormatException>(() => fresh.LoadQuantized(path))!;
        Assert.That(e.FilePath, Is.EqualTo(path));
        Assert.That(e.Problem, Does.StartWith($"'{key}' ").And.Contain(expected));
    }

    [Test]
    public void AZeroPointPastTheCodesIsRefused()
    {
        string path = Saved(QType.QInt4);
        Replace(path, "fc1.weight._shift", t =>
        {
            Tensor zeroPoints = full(t.shape, 3, ScalarType.Byte);
            zeroPoints.view(-1)[1] = 16;
            return zeroPoints;
        });
        using Module<Tensor, Tensor> fresh = Build(2);
        var e = Assert.Throws<QuantoFormatException>(() => fresh.LoadQuantized(path))!;
        Assert.That(e.Problem, Is.EqualTo(
            "'fc1.weight._shift' holds 16 at flat index 1: a qint4 zero-point must be in [0, 15]."));
    }

    [Test]
    public void ANaNFloat8CodeIsRefused()
    {
        string path = Saved(QType.QFloat8E4M3Fn);
        Replace(path, "fc2.weight._data", t =>
        {
            byte[] raw = SerializationTestUtil.Bytes(t);
            raw[2] = 0x7F; // e4m3fn NaN
            return SerializationTestUtil.FromBytes(raw, t.dtype, t.shape);
        });
        using Module<Tensor, Tensor> fresh = Build(2);
        var e = Assert.Throws<QuantoFormatException>(() => fresh.LoadQuantized(path))!;
        Assert.That(e.Problem, Does.StartWith("'fc2.weight._data' holds NaN at flat index 2"));
    }

    [Test]
    public void AZeroWeightScaleLoads()
    {
        string path = Saved(QType.QInt4);
        Replace(path, "fc1.weight._scale", t => Set(t, 0f));
        using Module<Tensor, Tensor> fresh = Build(2);
        Assert.DoesNotThrow(() => fresh.LoadQuantized(path));
    }
}
