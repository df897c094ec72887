using NUnit.Framework;
using Quanto.Nn;
using Quanto.Quantization;
using Quanto.Tensors;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using TorchSharp.Modules;

namespace Quanto.Tests.Quantization;

/// <summary>Sensitivity against errors recomputed here from the float model with a weight replaced; plans against
/// budgets and a brute-force search.</summary>
public sealed class PlanningTests
{
    private static readonly PlanCandidate[] Candidates =
    [
        new(QType.QInt2, 64), new(QType.QInt4, 128), new(QType.QInt4, 32, new HqqOptimizer()), new(QType.QInt8),
    ];

    private static double RelativeSquaredError(Tensor expected, Tensor actual)
    {
        double[] e = Reference.Values(expected), a = Reference.Values(actual);
        return e.Zip(a, (x, y) => (x - y) * (x - y)).Sum() / e.Sum(x => x * x);
    }

    [Test]
    public void MeasuresLayerAndModelErrorsAndLeavesTheModelFloat()
    {
        using var model = Seeded.Create(() => new Mlp(256, 64, 10));
        model.eval();
        using Tensor x = Seeded.Uniform([32, 256]);
        using Tensor before = model.forward(x).detach();
        SensitivityReport report = Quantizer.Sensitivity(model, [x], Candidates);
        TestContext.Out.WriteLine(report);

        Assert.That(Quantizer.QuantizedModules(model), Is.Empty, "the float layers are back");
        using (Tensor after = model.forward(x))
            Assert.That(Reference.Values(after), Is.EqualTo(Reference.Values(before)));
        Assert.That(report.Layers.Select(l => (l.Path, l.Parameters)),
            Is.EqualTo(new[] { ("fc1", 256L * 64), ("fc2", 64L * 10) }));

        // Bits per weight with fp32 scales (and shifts): fc1 rows of 256, fc2 rows of 64 (per channel below 128).
        // fc2's ten qint2 groups pack into ceil(10 / 4) = 3 rows of 64 bytes: 192 bytes for 160 bytes of codes.
        double[] fc1Bits = [2 + 64.0 / 64, 4 + 64.0 / 128, 4 + 64.0 / 32, 8 + 32.0 / 256];
        double[] fc2Bits = [(192 + 10 * 8) * 8.0 / 640, 4 + 64.0 / 64, 4 + 64.0 / 32, 8 + 32.0 / 64];
        Assert.That(report.Layers[0].Candidates.Select(c => c.BitsPerWeight), Is.EqualTo(fc1Bits));
        Assert.That(report.Layers[1].Candidates.Select(c => c.BitsPerWeight), Is.EqualTo(fc2Bits));

        // Recompute fc1's errors: the model with fc1's weight replaced by its quantized-dequantized value.
        var fc1 = (Linear)model.named_modules().Single(m => m.name == "fc1").module;
        using Tensor h = fc1.forward(x).detach();
        for (int i = 0; i < Candidates.Length; i++)
        {
            PlanCandidate c = Candidates[i];
            using Tensor original = fc1.weight!.detach().clone();
            using QuantizedWeight q = WeightQuantizer.Quantize(original, c.Weights!.Value, c.GroupSize, c.Optimizer);
            using (no_grad()) fc1.weight!.copy_(q.Dequantize());
            using Tensor hq = fc1.forward(x).detach(), y = model.forward(x).detach();
            using (no_grad()) fc1.weight!.copy_(original);
            CandidateResult r = report.Layers[0].Candidates[i];
            Assert.That(r.LayerError, Is.EqualTo(RelativeSquaredError(h, hq)).Within(1e-6).Percent, c.ToString());
            Assert.That(r.ModelError, Is.EqualTo(RelativeSquaredError(before, y)).Within(1e-6).Percent, c.ToString());
        }
        Assert.That(report.Layers[0].Candidates[3].ModelError, Is.LessThan(report.Layers[0].Candidates[1].ModelError));
    }

    [Test]
    public void APlanMeetsItsBudgetAndIsTakenByQuantize()
    {
        using var model = Seeded.Create(() => new Mlp(256, 64, 10));
        model.eval();
        using Tensor x = Seeded.Uniform([32, 256]);
        SensitivityReport sensitivity = Quantizer.Sensitivity(model, [x], Candidates);
        QuantizationPlan plan = Quantizer.Plan(sensitivity, bitsPerWeight: 4.5);
        TestContext.Out.WriteLine(plan);
        Assert.That(plan.BitsPerWeight, Is.LessThanOrEqualTo(4.5));
        Assert.That(plan.For("fc1"), Is.Not.Null);
        Assert.That(plan.For("nowhere"), Is.Null);

        QuantizationReport report = model.Quantize(plan);
        Assert.That(report.Quantized.Select(q => (q.Path, q.Weights)),
            Is.EqualTo(plan.Layers.Select(l => (l.Path, l.Choice.Weights))));
        foreach (QModule module in Quantizer.QuantizedModules(model))
        {
            LayerPlan layer = plan.For(module.Path)!;
            Assert.That((module.WeightQType, module.GroupSize),
                Is.EqualTo((layer.Choice.Weights, layer.Choice.GroupSize)));
        }
        Quantizer.Freeze(model);
        foreach (QModule module in Quantizer.QuantizedModules(model))
        {
            QuantizedWeight w = module.QuantizedWeight!;
            Assert.That(w.ByteSize * 8.0 / w.NumberOfElements, Is.EqualTo(plan.For(module.Path)!.BitsPerWeight));
        }

        var low = Assert.Throws<ArgumentOutOfRangeException>(() => Quantizer.Plan(sensitivity, bitsPerWeight: 2.5))!;
        Assert.That(low.Message, Does.Contain("3.015 bits per weight"));
    }

    /// <summary>Four equal layers with convex error curves: the plan's total error equals the best of all 3^4
    /// assignments that fit the budget.</summary>
    [TestCase(3.0)]
    [TestCase(4.25)]
    [TestCase(5.5)]
    public void TheSelectionMatchesABruteForceSearch(double budget)
    {
        double[][] errors = [[0.9, 0.2, 0.05], [0.5, 0.1, 0.04], [0.08, 0.03, 0.02], [2.0, 0.6, 0.1]];
        double[] bits = [2.5, 4.5, 8.25];
        var layers = errors.Select((e, i) => new LayerSensitivity($"l{i}", 1000,
            e.Select((err, k) => new CandidateResult(Candidates[k], null, bits[k], 0, err, err)).ToList())).ToList();
        QuantizationPlan plan = Quantizer.Plan(new SensitivityReport(layers, []), budget);

        double best = double.PositiveInfinity;
        for (int code = 0; code < 81; code++)
        {
            int[] pick = [code % 3, code / 3 % 3, code / 9 % 3, code / 27];
            if (pick.Sum(k => bits[k]) / 4 > budget) continue;
            best = Math.Min(best, pick.Select((k, i) => errors[i][k]).Sum());
        }
        Assert.That(plan.EstimatedModelError, Is.EqualTo(best).Within(1e-12));
        Assert.That(plan.BitsPerWeight, Is.LessThanOrEqualTo(budget));
    }
}
