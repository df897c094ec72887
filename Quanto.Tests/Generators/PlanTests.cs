using NUnit.Framework;
using Quanto.Quantization;
using Quanto.Tests.Generators.Samples;
using static TorchSharp.torch;

namespace Quanto.Tests.Generators;

/// <summary>
/// The generated <c>Quantize(plan, activations)</c> (issue 17.5): a <see cref="QuantizationPlan"/> applied to a
/// [Quantize] model builds the same modules as the eager <c>model.Quantize(plan)</c>
/// (<see cref="QuantizationPlanExtensions"/>) on an identical float model, nested models included, and gives the same
/// outputs bit for bit, dynamic (calibrated when activations are quantized) and frozen.
/// </summary>
[TestFixture]
public sealed class PlanTests
{
    [TestCase(null)]
    [TestCase(QType.QInt8)]
    public void A_hand_made_plan_equals_the_eager_path(QType? activations)
    {
        // Per-layer qtype, group size and optimizer; a float choice; unlisted layers (head, block.norm).
        var plan = new QuantizationPlan(
        [
            new LayerPlan("embed", new PlanCandidate(QType.QInt4, 32, new HqqOptimizer()), 64 * 32, 4.5, 0, 0),
            new LayerPlan("block.fc1", new PlanCandidate(QType.QInt8), 32 * 64, 8.25, 0, 0),
            new LayerPlan("block.fc2", PlanCandidate.Float, 64 * 32, 32, 0, 0),
        ]);
        string[] built = AssertPlanEqualsEager(plan, activations);
        Assert.That(built, Is.EqualTo(activations is null
            ? new[] { "embed: qint4, none, 32", "block.fc1: qint8, none, -" }
            : ["embed: qint4, qint8, 32", "block.fc1: qint8, qint8, -", "block.fc2: none, qint8, -"]));
    }

    [Test]
    public void A_plan_made_by_Quantizer_Plan_equals_the_eager_path()
    {
        using IDisposable scope = NewDisposeScope();
        manual_seed(17);
        var measured = new EncoderEager();
        Tensor[] samples = [randn(8, 64), randn(8, 64)];
        QuantizationPlan plan = Quantizer.Plan(measured, samples, bitsPerWeight: 5);
        Assert.That(plan.Layers.Select(l => l.Path), Is.EquivalentTo(new[] { "embed", "block.fc1", "block.fc2", "head" }));
        AssertPlanEqualsEager(plan, null);
    }

    [Test]
    public void Two_or_four_bit_activations_are_refused_before_anything_is_built()
    {
        var model = new Encoder();
        var plan = new QuantizationPlan([new LayerPlan("embed", new PlanCandidate(QType.QInt8), 1, 8, 0, 0)]);
        Assert.Throws<ArgumentException>(() => model.Quantize(plan, QType.QInt4));
        Assert.That(model.IsQuantized, Is.False);
    }

    /// <summary>Quantizes an <see cref="Encoder"/> and an <see cref="EncoderEager"/> with the same weights by the
    /// plan; returns the generated modules as "path: weights, activations, group".</summary>
    private static string[] AssertPlanEqualsEager(QuantizationPlan plan, QType? activations)
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        manual_seed(20261202);
        var generated = new Encoder();
        var eager = new EncoderEager();
        eager.load_state_dict(generated.state_dict());
        generated.eval();
        var swappedOut = eager.named_modules().Select(m => m.module).ToList();

        generated.Quantize(plan, activations);
        eager.Quantize(plan, activations);
        eager.eval(); // after the swap, so that it reaches the quantized modules
        string[] built = OverrideTests.Describe(generated.QuantizedModules()).ToArray();
        Assert.That(built, Is.EquivalentTo(OverrideTests.Describe(Quantizer.QuantizedModules(eager))));
        if (activations is not null)
        {
            Tensor samples = randn(8, 64);
            using (generated.Calibrate()) generated.ForwardQuantized(samples);
            using (new Calibration(eager)) eager.forward(samples);
        }
        Tensor x = randn(4, 64);
        Assert.That(Values(generated.ForwardQuantized(x)), Is.EqualTo(Values(eager.forward(x))), "dynamic");
        generated.Freeze();
        Quantizer.Freeze(eager);
        Assert.That(Values(generated.ForwardQuantized(x)), Is.EqualTo(Values(eager.forward(x))), "frozen");
        GC.KeepAlive(swappedOut);
        return built;
    }

    private static float[] Values(Tensor tensor) => tensor.contiguous().data<float>().ToArray();
}
