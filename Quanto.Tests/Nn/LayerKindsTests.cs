using System.Reflection;
using NUnit.Framework;
using Quanto.Nn;
using Quanto.Tests.Generators;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Tests.Nn;

/// <summary>The registry of layer kinds: what it holds, its factory, float-weight release, the CLI rule, and that
/// the generator reads the same kinds from the runtime's attributes.</summary>
[TestFixture]
public sealed class LayerKindsTests
{
    [Test]
    public void Every_attributed_quantized_module_of_the_runtime_is_a_kind()
    {
        Type[] attributed = typeof(QModule).Assembly.GetTypes()
            .Where(t => t.GetCustomAttribute<QuantizedLayerAttribute>() is not null).ToArray();
        Assert.That(LayerKinds.All.Select(k => k.QuantizedType), Is.EquivalentTo(attributed));
        Assert.That(LayerKinds.All.Select(k => k.Name), Is.SupersetOf(new[] { "Conv2d", "LayerNorm", "Linear" }));
        Assert.That(LayerKinds.All.Select(k => k.Name), Is.Ordered.Using((IComparer<string>)StringComparer.Ordinal));
    }

    [Test]
    public void Kinds_are_found_by_exact_float_and_quantized_type()
    {
        using var linear = nn.Linear(4, 3);
        LayerKind kind = LayerKinds.For(linear)!;
        Assert.That(kind.QuantizedType, Is.EqualTo(typeof(QLinear)));
        Assert.That((kind.WeightRank, kind.QuantizesWeights, kind.Operation), Is.EqualTo((2, true, "linear")));
        Assert.That(LayerKinds.For(typeof(LayerNorm))!.QuantizesWeights, Is.False);
        Assert.That(LayerKinds.For(typeof(Dropout)), Is.Null);
        using QModule twin = kind.Create(linear, new LayerSettings(QType.QInt8, Path: "fc"));
        Assert.That(LayerKinds.Of(twin), Is.SameAs(kind));
    }

    [Test]
    public void The_factory_builds_a_twin_sharing_the_layer_parameters()
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        var linear = nn.Linear(8, 4);
        QModule twin = LayerKinds.For(linear)!.Create(linear,
            new LayerSettings(QType.QInt4, QType.QInt8, 8, null, "blocks.0.fc"));
        Assert.That(twin, Is.TypeOf<QLinear>());
        Assert.That((twin.WeightQType, twin.ActivationQType, twin.GroupSize, twin.Path),
            Is.EqualTo(((QType?)QType.QInt4, (QType?)QType.QInt8, (int?)8, "blocks.0.fc")));
        Assert.That(twin.FloatWeight!.Handle, Is.EqualTo(linear.weight.Handle));
        Assert.That(twin.FloatBias!.Handle, Is.EqualTo(linear.bias!.Handle));
    }

    [Test]
    public void A_kind_whose_weights_stay_float_ignores_the_weight_settings()
    {
        using IDisposable scope = NewDisposeScope();
        var norm = nn.LayerNorm(8);
        QModule twin = LayerKinds.For(norm)!.Create(norm, new LayerSettings(QType.QInt4, QType.QInt8, 32, null, "n"));
        Assert.That((twin.WeightQType, twin.GroupSize, twin.ActivationQType),
            Is.EqualTo(((QType?)null, (int?)null, (QType?)QType.QInt8)));
    }

    [Test]
    public void The_factory_refuses_a_layer_of_another_kind_and_passes_the_module_refusals_on()
    {
        using IDisposable scope = NewDisposeScope();
        var error = Assert.Throws<ArgumentException>(() =>
            LayerKinds.For(typeof(Linear))!.Create(nn.LayerNorm(4), new LayerSettings(QType.QInt8, Path: "x.norm")));
        Assert.That(error!.Message, Does.Contain("'x.norm' is a LayerNorm, not a Linear"));
        var linear = nn.Linear(16, 4);
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            LayerKinds.For(linear)!.Create(linear, new LayerSettings(QType.QInt4, GroupSize: 12, Path: "fc")),
            "the module's own exception, not a TargetInvocationException");
    }

    [Test]
    public void Releasing_a_float_weight_leaves_an_empty_parameter_of_the_same_dtype()
    {
        using IDisposable scope = NewDisposeScope();
        var linear = nn.Linear(8, 4);
        Parameter old = linear.weight;
        LayerKind kind = LayerKinds.For(linear)!;
        Assert.That(kind.IsReleased(linear), Is.False);
        kind.ReleaseFloatWeight(linear);
        Assert.That(linear.weight.numel(), Is.Zero);
        Assert.That(linear.weight.dtype, Is.EqualTo(ScalarType.Float32));
        Assert.That(old.IsInvalid, Is.True, "the float tensor is freed, not just unreferenced");
        Assert.That(kind.IsReleased(linear), Is.True);
        Assert.Throws<InvalidOperationException>(() => LayerKinds.For(typeof(LayerNorm))!
            .ReleaseFloatWeight(nn.LayerNorm(4)));
    }

    [Test]
    public void The_cli_rule_quantizes_the_ranks_of_linear_and_convolution_weights()
    {
        Assert.That(LayerKinds.CliWeightRanks[2].Select(k => k.Name), Does.Contain("Linear"));
        Assert.That(LayerKinds.CliWeightRanks[4].Select(k => k.Name), Does.Contain("Conv2d"));
        Assert.That(LayerKinds.CliWeightRanks.ContainsKey(1), Is.False, "norm weights stay float");
    }

    [Test]
    public void A_registration_without_the_factory_constructor_is_refused_with_what_is_missing()
    {
        var error = Assert.Throws<InvalidOperationException>(() => LayerKind.FromType(typeof(NoFactory)));
        Assert.That(error!.Message, Does.Contain("NoFactory").And.Contain("(Linear source, LayerSettings settings)"));
    }

    [Test]
    public void The_generator_sees_the_same_kinds_as_the_runtime()
    {
        var compilation = GeneratorHarness.Compile([new("Empty", "namespace E; public static class X { }")]);
        var table = Quanto.Generators.LayerKindTable.For(compilation);
        Assert.That(table.Kinds.Select(k => (k.FloatName, k.QuantizedName, k.Operation, k.QuantizesWeights)),
            Is.EqualTo(LayerKinds.All.Select(k => (k.Name, k.QuantizedType.Name, k.Operation, k.QuantizesWeights))));
    }

    [QuantizedLayer(typeof(Linear), WeightRank = 2)]
    private sealed class NoFactory : QModule
    {
        public NoFactory() : base(nameof(NoFactory), null, null, null, null)
        {
        }

        public override Tensor Compute(QActivation input) => input.Value;

        public override string Describe() => nameof(NoFactory);

        protected override long[] ExpectedWeightShape() => [];
    }
}
