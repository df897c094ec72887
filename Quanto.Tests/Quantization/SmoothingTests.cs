using NUnit.Framework;
using Quanto.Quantization;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Quantization;

/// <summary>A transformer block: attention and an MLP around two LayerNorms, pre-norm (each LayerNorm feeds only
/// linear layers) or post-norm (the first LayerNorm's output is also the residual). LayerNorm gains with a few large
/// channels make outlier channels in the linear layers' inputs, as in real transformers.</summary>
internal sealed class NormBlock : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> ln1, q, k, v, o, ln2, fc1, fc2;
    private readonly bool _postNorm, _gelu;

    public NormBlock(long dim = 32, bool postNorm = false, bool gelu = false) : base(nameof(NormBlock))
    {
        ln1 = LayerNorm(dim);
        q = Linear(dim, dim);
        k = Linear(dim, dim);
        v = Linear(dim, dim);
        o = Linear(dim, dim);
        ln2 = LayerNorm(dim);
        fc1 = Linear(dim, 2 * dim);
        fc2 = Linear(2 * dim, dim);
        _postNorm = postNorm;
        _gelu = gelu;
        RegisterComponents();
        using var noGrad = no_grad();
        foreach ((string name, Tensor p) in named_parameters())
        {
            if (!name.EndsWith(".weight", StringComparison.Ordinal) || p.dim() != 1) continue;
            p.copy_(Seeded.Uniform([dim], seed: name.Length).abs().add(0.5));
            p[3] = tensor(25f);
            p[17] = tensor(-12f);
        }
    }

    public override Tensor forward(Tensor x)
    {
        Tensor h = ln1.forward(x);
        Tensor scores = q.forward(h).matmul(k.forward(h).transpose(1, 2)).div(Math.Sqrt(h.shape[^1]));
        Tensor attended = o.forward(functional.softmax(scores, -1).matmul(v.forward(h)));
        x = (_postNorm ? h : x).add(attended);
        Tensor hidden = fc1.forward(ln2.forward(x));
        hidden = _gelu ? functional.gelu(hidden) : functional.relu(hidden);
        return x.add(fc2.forward(hidden));
    }
}

public sealed class SmoothingTests
{
    private static Tensor Inputs(long seed) => Seeded.Uniform([4, 8, 32], seed).mul(3);

    private static Tensor Float(Module<Tensor, Tensor> model, Tensor x)
    {
        using var probe = ModuleProbe.Attach(Quantizer.QuantizedModules(model));
        using var noGrad = no_grad();
        return model.forward(x);
    }

    private static double Error(Module<Tensor, Tensor> reference, Module<Tensor, Tensor> model, Tensor x)
    {
        using var noGrad = no_grad();
        using Tensor expected = reference.forward(x), actual = model.forward(x);
        return Reference.CosineError(expected, actual);
    }

    [Test]
    public void SmoothQuantLeavesTheFloatOutputUnchangedAndFoldsWhereTheGraphAllows()
    {
        using var reference = Seeded.Create(() => new NormBlock());
        using var model = Seeded.Create(() => new NormBlock());
        reference.eval();
        model.eval();
        Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8, exclude: ["ln*"]);
        using Tensor x = Inputs(1);
        SmoothingReport report = Quantizer.SmoothQuant(model, [x]);
        TestContext.Out.WriteLine(report);

        using Tensor expected = reference.forward(x), actual = Float(model, x);
        Assert.That(Reference.MaxRelativeError(actual, expected), Is.LessThan(1e-5));
        var byLayers = report.Groups.ToDictionary(g => string.Join(",", g.Layers));
        Assert.That(byLayers.Keys, Is.EquivalentTo(new[] { "q,k,v", "o", "fc1", "fc2" }));
        Assert.That(byLayers["q,k,v"].Producer, Is.EqualTo("ln1"));
        Assert.That(byLayers["o"].Producer, Is.EqualTo("v"), "attention mixes rows: V's channels reach o");
        Assert.That(byLayers["fc1"].Producer, Is.EqualTo("ln2"));
        Assert.That(byLayers["fc2"].Producer, Is.EqualTo("fc1"), "ReLU is positively homogeneous");
        Assert.That(byLayers["q,k,v"].Applied && byLayers["fc1"].Applied, Is.True);
        Assert.That(byLayers["q,k,v"].ErrorAfter, Is.LessThan(byLayers["q,k,v"].ErrorBefore));
    }

    /// <summary>|1 - cos| on fresh inputs of the block quantized by <paramref name="quantize"/>, after
    /// <paramref name="algorithm"/> (or not) on the calibration inputs, calibrated and frozen.</summary>
    private static double QuantizedError(Action<Module<Tensor, Tensor>> quantize,
        Action<Module<Tensor, Tensor>, Tensor>? algorithm)
    {
        using var reference = Seeded.Create(() => new NormBlock());
        using var model = Seeded.Create(() => new NormBlock());
        reference.eval();
        model.eval();
        using Tensor calibration = Inputs(1), test = Inputs(2);
        quantize(model);
        algorithm?.Invoke(model, calibration);
        using (new Calibration()) model.forward(calibration).Dispose();
        Quantizer.Freeze(model);
        return Error(reference, model, test);
    }

    [Test]
    public void SmoothQuantImprovesW8A8OnOutlierChannels()
    {
        Action<Module<Tensor, Tensor>> w8a8 = m =>
            Quantizer.Quantize(m, weights: QType.QInt8, activations: QType.QInt8, exclude: ["ln*"]);
        double plainError = QuantizedError(w8a8, null);
        double smoothedError = QuantizedError(w8a8, (m, x) => Quantizer.SmoothQuant(m, [x]));
        TestContext.Out.WriteLine($"W8A8 |1 - cos|: plain {plainError:E2}, SmoothQuant {smoothedError:E2}");
        Assert.That(smoothedError, Is.LessThan(plainError));
    }

    [Test]
    public void APostNormResidualOrAGeluKeepsTheFoldOut()
    {
        using var model = Seeded.Create(() => new NormBlock(postNorm: true, gelu: true));
        using var reference = Seeded.Create(() => new NormBlock(postNorm: true, gelu: true));
        model.eval();
        reference.eval();
        Quantizer.Quantize(model, weights: QType.QInt8, activations: QType.QInt8, exclude: ["ln*"]);
        using Tensor x = Inputs(3);
        SmoothingReport report = Quantizer.SmoothQuant(model, [x]);
        TestContext.Out.WriteLine(report);
        var byLayers = report.Groups.ToDictionary(g => string.Join(",", g.Layers));
        Assert.That(byLayers["q,k,v"].Applied, Is.False);
        Assert.That(byLayers["q,k,v"].Reason, Does.Contain("'ln1'").And.Contain("also other operations"));
        Assert.That(byLayers["fc2"].Producer, Is.Null);
        Assert.That(byLayers["fc2"].Reason, Does.Contain("no LayerNorm or Linear feeds"));
        Assert.That(byLayers["o"].Applied, Is.True);
        using Tensor expected = reference.forward(x), actual = Float(model, x);
        Assert.That(Reference.MaxRelativeError(actual, expected), Is.LessThan(1e-5));
    }

    [Test]
    public void AwqLowersTheInt4ErrorWithTheSameFloatModel()
    {
        Action<Module<Tensor, Tensor>> int4 = m => Quantizer.Quantize(m, weights: QType.QInt4, groupSize: 16);
        double plainError = QuantizedError(int4, null);
        double awqError = QuantizedError(int4, (model, calibration) =>
        {
            SmoothingReport report = Quantizer.Awq(model, [calibration]);
            TestContext.Out.WriteLine(report);
            Assert.That(report.Groups.Where(g => g.Applied), Is.Not.Empty);
            Assert.That(report.Groups.Where(g => g.Applied),
                Has.All.Matches<SmoothedGroup>(g => g.ErrorAfter < g.ErrorBefore));
            using var reference = Seeded.Create(() => new NormBlock());
            reference.eval();
            using Tensor expected = reference.forward(calibration), actual = Float(model, calibration);
            Assert.That(Reference.MaxRelativeError(actual, expected), Is.LessThan(1e-5));
        });
        TestContext.Out.WriteLine($"int4 g16 |1 - cos|: round-to-nearest {plainError:E2}, AWQ {awqError:E2}");
        Assert.That(awqError, Is.LessThan(plainError));
    }
}
