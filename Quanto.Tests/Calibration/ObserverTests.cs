using NUnit.Framework;
using Quanto.Nn;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

// Not Quanto.Tests.Calibration: a namespace of that name would hide the Calibration class in every test namespace.
namespace Quanto.Tests.CalibrationChecks;

/// <summary>Observers against values worked out by hand or by a brute-force search written here.</summary>
public sealed class ObserverTests
{
    private static QModule CalibrateOneLayer(Observer observer, double momentum, params float[][] batches)
    {
        var model = Seeded.Create(() => Sequential(("fc", Linear(4, 4))));
        model.eval();
        Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8);
        using (new Calibration(momentum, observer, streamline: false))
        {
            foreach (float[] batch in batches)
            {
                using Tensor x = tensor(batch, [1, 4]);
                model.forward(x).Dispose();
            }
        }
        return Quantizer.QuantizedModules(model).Single();
    }

    [Test]
    public void RunningMaxKeepsTheWidestBatchWhateverTheMomentum()
    {
        QModule fc = CalibrateOneLayer(new RunningMaxObserver(), 0.9,
            [1, 0, 0, 0], [0, -6.35f, 0, 0], [0.1f, 0, 0, 0], [0, 0, 0.2f, 0]);
        Assert.That(fc.input_scale.item<float>(), Is.EqualTo(6.35f / 127).Within(1e-7));
    }

    [Test]
    public void MomentumIsAnExponentialAverageAfterTheFirstBatch()
    {
        // 0.02 (set), then 0.5 * 0.02 + 0.5 * 0.04 = 0.03, then 0.5 * 0.03 + 0.5 * 0.01 = 0.02.
        QModule fc = CalibrateOneLayer(new AbsmaxObserver(), 0.5, [2.54f, 0, 0, 0], [0, 5.08f, 0, 0], [1.27f, 0, 0, 0]);
        Assert.That(fc.input_scale.item<float>(), Is.EqualTo(0.02f).Within(1e-7));
    }

    [Test]
    public void RunningMaxOfAPercentileIgnoresOneOutlierPerBatch()
    {
        var values = Enumerable.Range(1, 1000).Select(i => i / 1000f).ToArray();
        values[10] = 500;
        using Tensor x = tensor(values);
        var observer = new RunningMaxObserver(new PercentileObserver(99));
        Assert.That(observer.Observe(x), Is.EqualTo(0.991).Within(1e-6));
        Assert.That(observer.Accumulate(0.5, 0.25, 0.9), Is.EqualTo(0.5));
    }

    [TestCase(QType.QInt8)]
    [TestCase(QType.QFloat8E4M3Fn)]
    public void MseClippingFindsTheBruteForceMinimum(QType qtype)
    {
        // A Laplace batch: its tail is long enough that clipping it lowers the total int8 error (the optimum lies
        // near 0.94 of max |x|); float8's steps follow the magnitude, so clipping gains it little.
        using var generator = new Generator(3);
        using Tensor u = rand([1 << 14], generator: generator), sign = rand([1 << 14], generator: generator);
        using Tensor x = u.log().neg().mul(sign.sub(0.5).sign());
        float[] v = x.data<float>().ToArray();
        double absmax = v.Max(Math.Abs);
        var observer = new MseObserver(minRatio: 0.1, steps: 46);
        double chosen = observer.Observe(x, qtype);

        double bestRatio = 1, bestError = double.PositiveInfinity;
        for (int i = 0; i < 46; i++)
        {
            double ratio = 1 - i * 0.9 / 45;
            double error = Error(v, absmax * ratio, qtype);
            if (error < bestError) (bestError, bestRatio) = (error, ratio);
        }
        // The float32 mean inside the observer may order two near-equal candidates differently: compare errors.
        Assert.That(Error(v, chosen, qtype), Is.EqualTo(bestError).Within(bestError * 1e-4));
        if (qtype == QType.QInt8) Assert.That(bestRatio, Is.LessThan(1), "the int8 case clips");
    }

    /// <summary>mean((q(x) - x)^2): int8 rounds half to even and clamps; float8 e4m3fn clamps to 448, then
    /// libtorch's cast rounds.</summary>
    private static double Error(float[] v, double clip, QType qtype)
    {
        float scale = (float)(clip / qtype.Info().QMax);
        var q = new float[v.Length];
        for (int i = 0; i < v.Length; i++)
        {
            float scaled = v[i] / scale;
            q[i] = qtype == QType.QInt8
                ? Math.Clamp(MathF.Round(scaled, MidpointRounding.ToEven), -128, 127)
                : Math.Clamp(scaled, -448f, 448f);
        }
        if (qtype != QType.QInt8)
        {
            using Tensor t = tensor(q);
            using Tensor f8 = t.to(QTypes.Float8E4M3Fn);
            using Tensor back = f8.to(ScalarType.Float32);
            q = back.data<float>().ToArray();
        }
        double sum = 0;
        for (int i = 0; i < v.Length; i++)
        {
            double d = q[i] * scale - v[i];
            sum += d * d;
        }
        return sum / v.Length;
    }
}
