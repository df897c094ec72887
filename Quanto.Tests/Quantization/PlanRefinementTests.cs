using NUnit.Framework;
using Quanto.Quantization;
using Quanto.Tensors;
using Quanto.Tests.TestSupport;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Quantization;

/// <summary>The planner's in-context rounds, GPTQ candidates and budget check, against joint errors recomputed here by
/// writing the dequantized weights into the float model, a brute-force search over every assignment, and Hessians
/// computed here.</summary>
public sealed class PlanRefinementTests
{
    // Rows of 128 inputs with float32 scale + shift: int2 g32 = 2 + 64/32 = 4, int4 g32 = 4 + 64/32 = 6,
    // int8 per channel = 8 + 32/128 = 8.25 bits per weight.
    private static readonly PlanCandidate[] Three =
        [new(QType.QInt2, 32, new MaxOptimizer()), new(QType.QInt4, 32, new MaxOptimizer()), new(QType.QInt8)];

    private static readonly double[] ThreeBits = [4, 6, 8.25];

    private static Sequential Model() => Seeded.Create(() =>
    {
        Sequential m = Sequential(("fc1", Linear(128, 128)), ("a1", ReLU()), ("fc2", Linear(128, 128)),
            ("a2", ReLU()), ("fc3", Linear(128, 16)));
        m.eval();
        return m;
    }, seed: 5);

    private static readonly string[] Paths = ["fc1", "fc2", "fc3"];

    private static Linear[] Layers(Sequential model) =>
        Paths.Select(n => (Linear)model.named_modules().Single(m => m.name == n).module).ToArray();

    /// <summary>||y_q - y||² / ||y||² with each layer's weight replaced by its candidate's dequantized weight.
    /// </summary>
    private static double JointError(Sequential model, Tensor x, Tensor expected, int[] pick)
    {
        Linear[] layers = Layers(model);
        Tensor[] originals = layers.Select(l => l.weight!.detach().clone()).ToArray();
        try
        {
            for (int i = 0; i < layers.Length; i++)
            {
                PlanCandidate c = Three[pick[i]];
                using QuantizedWeight q = WeightQuantizer.Quantize(originals[i], c.Weights!.Value, c.GroupSize,
                    c.Optimizer);
                using (no_grad()) layers[i].weight!.copy_(q.Dequantize());
            }
            using Tensor y = model.forward(x).detach();
            double[] e = Reference.Values(expected), a = Reference.Values(y);
            return e.Zip(a, (p, q) => (p - q) * (p - q)).Sum() / e.Sum(p => p * p);
        }
        finally
        {
            using (no_grad())
            {
                for (int i = 0; i < layers.Length; i++) layers[i].weight!.copy_(originals[i]);
            }
            foreach (Tensor t in originals) t.Dispose();
        }
    }

    private static int[] Picks(QuantizationPlan plan) => Paths.Select(p =>
        Array.FindIndex(Three, c => c.Weights == plan.For(p)!.Choice.Weights)).ToArray();

    [TestCase(5.0)]
    [TestCase(6.0)]
    [TestCase(7.0)]
    public void TheRefinedPlanIsMeasuredJointlyAndIsTheBestAssignmentWithinTheBudget(double budget)
    {
        using Sequential model = Model();
        using Tensor x = Seeded.Uniform([64, 128]);
        using Tensor expected = model.forward(x).detach();
        long[] sizes = [128 * 128, 128 * 128, 16 * 128];

        double best = double.PositiveInfinity;
        for (int code = 0; code < 27; code++)
        {
            int[] pick = [code % 3, code / 3 % 3, code / 9];
            double bits = pick.Select((k, i) => ThreeBits[k] * sizes[i]).Sum() / sizes.Sum();
            if (bits <= budget) best = Math.Min(best, JointError(model, x, expected, pick));
        }

        QuantizationPlan first = Quantizer.Plan(model, [x], budget, Three, refinements: 0);
        QuantizationPlan refined = Quantizer.Plan(model, [x], budget, Three);
        TestContext.Out.WriteLine(refined);
        double firstJoint = JointError(model, x, expected, Picks(first));
        double refinedJoint = JointError(model, x, expected, Picks(refined));

        Assert.That(refined.BitsPerWeight, Is.LessThanOrEqualTo(budget));
        Assert.That(refined.BitsPerWeight, Is.EqualTo(
            Picks(refined).Select((k, i) => ThreeBits[k] * sizes[i]).Sum() / sizes.Sum()).Within(1e-12));
        Assert.That(double.IsNaN(first.MeasuredModelError), "no in-context round, no joint measurement");
        Assert.That(refined.MeasuredModelError, Is.EqualTo(refinedJoint).Within(1e-4).Percent);
        Assert.That(refinedJoint, Is.LessThanOrEqualTo(firstJoint * (1 + 1e-9)));
        Assert.That(refinedJoint, Is.EqualTo(best).Within(1e-4).Percent, $"first-order {firstJoint:E3}");
        using (Tensor after = model.forward(x))
            Assert.That(Reference.Values(after), Is.EqualTo(Reference.Values(expected)), "the model is float again");
    }

    [Test]
    public void ABudgetBelowTheCheapestCandidatesIsRefusedBeforeAnythingIsMeasured()
    {
        using var model = Seeded.Create(() => new Mlp(256, 64, 10));
        using Tensor x = Seeded.Uniform([32, 256]);
        var reports = new List<QuantizationProgress>();
        // fc1 (64 x 256) at int2 g64: 2 + 64/64 = 3 bits; fc2 (10 x 64) per channel: ten int2 groups pack into
        // ceil(10 / 4) = 3 rows of 64 bytes, plus 10 x 8 bytes of scale and shift: 272 bytes for 640 weights.
        double minimum = ((256 * 64 * 3.0) + (272 * 8)) / ((256 * 64) + 640);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Quantizer.Plan(model, [x], 2.5,
            [new(QType.QInt2, 64), new(QType.QInt4, 128)], new Progress(reports)))!;
        Assert.That(e.Message, Does.Contain($"{minimum:F3} bits per weight"));
        Assert.That(reports, Is.Empty, "refused before the first pass");
        Assert.That(Quantizer.QuantizedModules(model), Is.Empty, "the model is float again");
        Assert.Throws<ArgumentOutOfRangeException>(() => Quantizer.Plan(model, [x], 4.5, refinements: -1));
        Assert.Throws<ArgumentException>(() => Quantizer.Plan(model, [x], 9,
            [new(QType.QFloat8E4M3Fn, Gptq: new GptqOptions())]));
    }

    [Test]
    public void GptqCandidatesUseTheLayersHessianAndQuantizerGptqAppliesThem()
    {
        using var model = Seeded.Create(() => new Mlp(256, 64, 10));
        model.eval();
        using Tensor x = Seeded.Uniform([48, 256]);
        using Tensor expected = model.forward(x).detach();
        var gptq = new GptqOptions();
        PlanCandidate[] candidates = [new(QType.QInt4, 64, new HqqOptimizer(), gptq), new(QType.QInt8)];
        SensitivityReport report = Quantizer.Sensitivity(model, [x], candidates);
        CandidateResult measured = report.Layers[0].Candidates[0];
        Assert.That(measured.Candidate.ToString(), Is.EqualTo("qint4 g64 hqq gptq"));

        // fc1's inputs are the samples themselves: H = Σ x xᵀ, computed here in float64.
        var fc1 = (Linear)model.named_modules().Single(m => m.name == "fc1").module;
        using Tensor h = x.to(ScalarType.Float64).t().mm(x.to(ScalarType.Float64)).to(ScalarType.Float32);
        using Tensor original = fc1.weight!.detach().clone();
        using QuantizedWeight q = Gptq.Quantize(original, h, QType.QInt4, 64,
            gptq with { GroupOptimizer = new HqqOptimizer() });
        using (no_grad()) fc1.weight!.copy_(q.Dequantize());
        using Tensor y = model.forward(x).detach();
        using (no_grad()) fc1.weight!.copy_(original);
        double[] e = Reference.Values(expected), a = Reference.Values(y);
        double modelError = e.Zip(a, (p, r) => (p - r) * (p - r)).Sum() / e.Sum(p => p * p);
        Assert.That(measured.ModelError, Is.EqualTo(modelError).Within(1).Percent);

        // With GPTQ only fc1's candidate: the plan gives it GPTQ, and Quantizer.Gptq runs on that layer alone.
        var plan = new QuantizationPlan([
            new LayerPlan("fc1", candidates[0], 256 * 64, 5, 0, 0), new LayerPlan("fc2", candidates[1], 640, 8.5, 0, 0),
        ]);
        model.Quantize(plan);
        GptqReport applied = Quantizer.Gptq(Quantizer.QuantizedModules(model), plan, () => model.forward(x));
        Assert.That(applied.Layers.Select(l => l.Path), Is.EqualTo(new[] { "fc1" }));
        Assert.That(Quantizer.QuantizedModules(model).Select(m => (m.Path, m.IsFrozen)),
            Is.EqualTo(new[] { ("fc1", true), ("fc2", false) }));
    }

    [Test]
    public void WithGptqRoundsOnlyTheTwoAndFourBitLayersByGptqAndKeepsTheirBits()
    {
        var asymmetric = new GptqOptions { ActOrder = true, Asymmetric = true };
        var plan = new QuantizationPlan([
            new LayerPlan("fc1", new PlanCandidate(QType.QInt2, 32, new HqqOptimizer()), 128 * 128, 4, 0.3, 0.2),
            new LayerPlan("fc2", new PlanCandidate(QType.QInt4, 64), 128 * 128, 5, 0.1, 0.05),
            new LayerPlan("fc3", new PlanCandidate(QType.QInt8), 128 * 16, 8.25, 0.01, 0.001),
            new LayerPlan("head", new PlanCandidate(null), 16, 32, 0, 0),
        ], targetBitsPerWeight: 5, measuredModelError: 0.25);

        QuantizationPlan rounded = plan.WithGptq(asymmetric);

        Assert.That(rounded.Layers.Select(l => l.Choice.ToString()), Is.EqualTo(new[]
        {
            "qint2 g32 hqq gptq act-order asymmetric", "qint4 g64 gptq act-order asymmetric", "qint8", "float",
        }));
        Assert.That(rounded.Layers.Select(l => (l.Path, l.BitsPerWeight, l.LayerError, l.ModelError)),
            Is.EqualTo(plan.Layers.Select(l => (l.Path, l.BitsPerWeight, l.LayerError, l.ModelError))));
        Assert.That(rounded.BitsPerWeight, Is.EqualTo(plan.BitsPerWeight));
        Assert.That(rounded.TargetBitsPerWeight, Is.EqualTo(5));
        Assert.That(rounded.MeasuredModelError, Is.NaN, "the planner measured round-to-nearest, not GPTQ");
        Assert.That(rounded.For("fc2")!.Choice.Gptq, Is.SameAs(asymmetric));
        Assert.That(plan.For("fc2")!.Choice.Gptq, Is.Null, "the original plan is unchanged");
        Assert.Throws<ArgumentNullException>(() => plan.WithGptq(null!));
    }

    [Test]
    public void TheDefaultCandidatesSpanTwoToEightBitsWithAndWithoutGptq()
    {
        Assert.That(PlanCandidate.Defaults.Select(c => c.ToString()), Is.Unique);
        Assert.That(PlanCandidate.Defaults.Count(c => c.Gptq is not null), Is.EqualTo(5));
        Assert.That(PlanCandidate.Defaults, Has.Count.EqualTo(13));
        Assert.That(PlanCandidate.Defaults.Select(c => c.ToString()), Does.Contain("qint4 g256 hqq gptq act-order")
            .And.Contain("qint2 g128 hqq").And.Contain("qint8"));
    }

    private sealed class Progress(List<QuantizationProgress> reports) : IProgress<QuantizationProgress>
    {
        public void Report(QuantizationProgress value) => reports.Add(value);
    }
}
