using NUnit.Framework;
using Quanto.Nn;
using Quanto.Quantization;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Quantization;

/// <summary>
/// Asymmetric calibration (<see cref="GptqOptions.Asymmetric"/>): a layer after quantized ones aims at the float
/// model's output of that layer. The reference builds the target in double precision here, W* = W + W ΔC (H +
/// λI)⁻¹ with ΔC = Σ (h_f - h_q) h_qᵀ over the float and the quantized hidden activations, and rounds it with the
/// direct column-by-column GPTQ of <see cref="GptqTests"/>.
/// </summary>
public sealed class GptqAsymmetricTests
{
    [Test]
    public void TheSecondLayerRoundsTheLeastSquaresTargetForTheFloatOutput()
    {
        using Tensor x = GptqTests.CorrelatedInputs(128, 32, seed: 21, sourceCount: 3, noiseLevel: 0.2);
        using var model = Seeded.Create(() => new Mlp(32, 24, 8), seed: 4);
        model.eval();
        Dictionary<string, Tensor> floats = model.state_dict().ToDictionary(p => p.Key, p => p.Value.clone());
        Quantizer.Quantize(model, QType.QInt2, groupSize: 16, include: ["fc1"]);
        Quantizer.Quantize(model, QType.QInt8, include: ["fc2"]);
        Quantizer.Gptq(model, [x], new GptqOptions { Asymmetric = true, GroupOptimizer = new MaxOptimizer() });
        QModule[] modules = Quantizer.QuantizedModules(model).ToArray();

        using Tensor w1q = modules.Single(m => m.Path == "fc1").QuantizedWeight!.Dequantize();
        using Tensor hf = nn.functional.relu(x.mm(floats["fc1.weight"].t()).add(floats["fc1.bias"]));
        using Tensor hq = nn.functional.relu(x.mm(w1q.t()).add(floats["fc1.bias"]));
        double[,] h = GptqTests.Hessian(hq);
        int d = h.GetLength(0);
        Assert.That(Enumerable.Range(0, d).Min(i => h[i, i]), Is.GreaterThan(0), "no dead hidden unit");
        double[,] cross = Cross(hf, hq);
        float[,] w2 = GptqTests.ToArray(floats["fc2.weight"]);
        float[,] target = Target(w2, cross, h);
        (int[,] codes, _) = GptqTests.ReferenceGptq(target, h, 8, d, Enumerable.Range(0, d).ToArray(), false);

        int[,] actual = GptqTests.Codes(modules.Single(m => m.Path == "fc2").QuantizedWeight!);
        int same = 0;
        for (int r = 0; r < codes.GetLength(0); r++)
        {
            for (int c = 0; c < d; c++) same += actual[r, c] == codes[r, c] ? 1 : 0;
        }
        Assert.That(same, Is.EqualTo(codes.Length), "every code as the reference picks it");
        (int[,] plain, _) = GptqTests.ReferenceGptq(w2, h, 8, d, Enumerable.Range(0, d).ToArray(), false);
        Assert.That(actual, Is.Not.EqualTo(plain), "the target moved some codes");
    }

    [Test]
    public void LowersTheModelOutputErrorOfPlainGptq()
    {
        using Tensor x = GptqTests.CorrelatedInputs(256, 32, seed: 22, sourceCount: 3, noiseLevel: 0.2);
        using var reference = Seeded.Create(() => new Mlp(32, 48, 8), seed: 5);
        reference.eval();
        using Tensor y = Output(reference, x);
        double plain = Error(x, y, new GptqOptions()), asymmetric = Error(x, y, new GptqOptions { Asymmetric = true });
        TestContext.Out.WriteLine($"model output |dy|^2: plain GPTQ {plain:G4}, asymmetric {asymmetric:G4}");
        Assert.That(asymmetric, Is.LessThan(plain));
    }

    private static double Error(Tensor x, Tensor y, GptqOptions options)
    {
        using var model = Seeded.Create(() => new Mlp(32, 48, 8), seed: 5);
        model.eval();
        Quantizer.Quantize(model, QType.QInt2, groupSize: 16);
        Quantizer.Gptq(model, [x], options);
        using Tensor yq = Output(model, x);
        double[] a = Reference.Values(y), b = Reference.Values(yq);
        return a.Zip(b, (p, q) => (p - q) * (p - q)).Sum();
    }

    private static Tensor Output(Mlp model, Tensor x)
    {
        using var noGrad = no_grad();
        return model.forward(x);
    }

    /// <summary>Σ over rows of (f - q)ᵀ q.</summary>
    private static double[,] Cross(Tensor floatRows, Tensor quantizedRows)
    {
        double[] f = Reference.Values(floatRows), q = Reference.Values(quantizedRows);
        long n = floatRows.shape[0], d = floatRows.shape[1];
        var c = new double[d, d];
        for (long r = 0; r < n; r++)
        {
            for (long i = 0; i < d; i++)
            {
                double delta = f[r * d + i] - q[r * d + i];
                for (long j = 0; j < d; j++) c[i, j] += delta * q[r * d + j];
            }
        }
        return c;
    }

    /// <summary>W + W ΔC (H + λ mean(diag H) I)⁻¹, rounded to float32.</summary>
    private static float[,] Target(float[,] w, double[,] cross, double[,] h)
    {
        int rows = w.GetLength(0), d = w.GetLength(1);
        var damped = (double[,])h.Clone();
        double mean = Enumerable.Range(0, d).Average(i => h[i, i]);
        for (int i = 0; i < d; i++) damped[i, i] += GptqTests.Damping * mean;
        double[,] inverse = GptqTests.Inverse(damped);
        var target = new float[rows, d];
        for (int r = 0; r < rows; r++)
        {
            var m = new double[d]; // (W ΔC)[r, :]
            for (int k = 0; k < d; k++)
            {
                for (int j = 0; j < d; j++) m[j] += w[r, k] * cross[k, j];
            }
            for (int c = 0; c < d; c++)
            {
                double correction = 0;
                for (int j = 0; j < d; j++) correction += m[j] * inverse[j, c];
                target[r, c] = (float)(w[r, c] + correction);
            }
        }
        return target;
    }
}
