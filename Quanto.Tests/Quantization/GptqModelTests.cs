using NUnit.Framework;
using Quanto.Nn;
using Quanto.Quantization;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Quantization;

/// <summary>The model pass: Hessians from the layers' real inputs, sequential quantization, freezing, the report.
/// </summary>
public sealed class GptqModelTests
{
    private static Tensor Inputs(long rows, long features, long seed) =>
        GptqTests.CorrelatedInputs(rows, features, seed, sourceCount: 3, noiseLevel: 0.2);

    private static Tensor Output(Module<Tensor, Tensor> model, Tensor x)
    {
        using var noGrad = no_grad();
        return model.forward(x);
    }

    [Test]
    public void QuantizesFreezesAndBeatsRoundToNearestOnTheModelOutput()
    {
        using Tensor x = Inputs(128, 32, seed: 1);
        using var reference = Seeded.Create(() => new Mlp(32, 64, 8));
        using var gptq = Seeded.Create(() => new Mlp(32, 64, 8));
        using var rtn = Seeded.Create(() => new Mlp(32, 64, 8));
        foreach (Module m in new Module[] { reference, gptq, rtn }) m.eval();
        Quantizer.Quantize(gptq, weights: QType.QInt4, groupSize: 16);
        Quantizer.Quantize(rtn, weights: QType.QInt4, groupSize: 16);

        var log = new StringWriter();
        GptqReport report = Quantizer.Gptq(gptq, [x], progress: new ConsoleProgressBar(log));
        Quantizer.Freeze(rtn);

        Assert.That(Quantizer.QuantizedModules(gptq).All(m => m.IsFrozen), Is.True);
        Assert.That(report.Layers.Select(l => l.Path), Is.EqualTo(new[] { "fc1", "fc2" }));
        Assert.That(report.Layers.Select(l => l.Samples), Is.All.EqualTo(128));
        Assert.That(report.Layers, Has.All.Matches<GptqLayerResult>(l => l.GptqError < l.RoundToNearestError));
        Assert.That(log.ToString(), Does.Contain("GPTQ   1/2 fc1").And.Contain("GPTQ   2/2 fc2").And.Contain("100%"));

        using Tensor y = Output(reference, x), yg = Output(gptq, x), yr = Output(rtn, x);
        double errorGptq = Reference.MeanAbsError(y, yg), errorRtn = Reference.MeanAbsError(y, yr);
        TestContext.Out.WriteLine(report);
        TestContext.Out.WriteLine($"model output mean |dy|: round-to-nearest {errorRtn:G4}, GPTQ {errorGptq:G4}");
        Assert.That(errorGptq, Is.LessThan(errorRtn));
    }

    [Test]
    public void WorksOnGeneratedTwinsThroughForwardQuantized()
    {
        using var model = Seeded.Create(() => new Generators.Samples.Mlp());
        model.eval();
        model.Quantize();
        using Tensor x = Inputs(64, 64, seed: 2);
        GptqReport report = Quantizer.Gptq(model.QuantizedModules(), () => model.ForwardQuantized(x));
        Assert.That(report.Layers.Select(l => (l.Path, l.QType)), Is.EqualTo(new[]
        {
            ("fc1", QType.QInt4), ("fc2", QType.QInt4), ("head", QType.QInt8),
        }));
        Assert.That(model.QuantizedModules().Where(m => m.WeightQType is not null).All(m => m.IsFrozen), Is.True);
        using var noGrad = no_grad();
        Assert.DoesNotThrow(() => model.ForwardQuantized(x).Dispose());
    }

    [Test]
    public void ListsWhatItCannotQuantize()
    {
        using var model = Seeded.Create(() => Sequential(("a", Linear(8, 8)), ("b", Linear(8, 4))));
        model.eval();
        Quantizer.Quantize(model, weights: QType.QFloat8E4M3Fn, include: ["a"]);
        Quantizer.Quantize(model, weights: QType.QInt8, include: ["b"]);
        using Tensor x = Inputs(16, 8, seed: 3);
        GptqReport report = Quantizer.Gptq(model, [x]);
        Assert.That(report.Layers.Select(l => l.Path), Is.EqualTo(new[] { "b" }));
        SkippedModuleInfo a = report.Skipped.Single();
        Assert.That((a.Path, a.Reason), Is.EqualTo(("a", "GPTQ rounds to an integer grid; qfloat8_e4m3fn is cast")));
        Assert.That(Quantizer.QuantizedModules(model).Single(m => m.Path == "a").IsFrozen, Is.False);
    }

    /// <summary>A convolution's Hessian is over its patches: Σ p pᵀ with p the (in, kh, kw) window at every output
    /// position, zero padding included, enumerated here by hand.</summary>
    [Test]
    public void AConvolutionsHessianIsOverItsPatches()
    {
        using var model = Seeded.Create(() => Sequential(("conv", Conv2d(2, 3, 2, stride: 1, padding: 1))));
        Quantizer.Quantize(model, weights: QType.QInt8);
        var conv = (QConv2d)Quantizer.QuantizedModules(model).Single();
        using Tensor x = Seeded.Uniform([2, 2, 3, 3]);
        using var hessian = new GptqHessian(8);
        hessian.AddInputOf(conv, x);

        double[] v = Reference.Values(x);
        var expected = new double[8, 8];
        long patches = 0;
        for (int n = 0; n < 2; n++)
        {
            for (int oy = 0; oy < 4; oy++)
            {
                for (int ox = 0; ox < 4; ox++)
                {
                    var p = new double[8];
                    for (int c = 0; c < 2; c++)
                    {
                        for (int ky = 0; ky < 2; ky++)
                        {
                            for (int kx = 0; kx < 2; kx++)
                            {
                                int iy = oy - 1 + ky, ix = ox - 1 + kx;
                                bool inside = iy is >= 0 and < 3 && ix is >= 0 and < 3;
                                p[c * 4 + ky * 2 + kx] = inside ? v[((n * 2 + c) * 3 + iy) * 3 + ix] : 0;
                            }
                        }
                    }
                    for (int i = 0; i < 8; i++)
                    {
                        for (int j = 0; j < 8; j++) expected[i, j] += p[i] * p[j];
                    }
                    patches++;
                }
            }
        }
        Assert.That(hessian.Samples, Is.EqualTo(patches));
        Assert.That(Reference.Values(hessian.Matrix), Is.EqualTo(expected.Cast<double>().ToArray()).Within(1e-5));
    }
}
