using NUnit.Framework;

namespace Quanto.Tests.Generators;

/// <summary>How class defaults, field overrides, Include/Exclude and [NoQuantize] resolve into the generated twins
/// and the compile-time quantization map.</summary>
[TestFixture]
public sealed class SettingsTests
{
    private const string Source = """
        using TorchSharp.Modules;
        using static Quanto.QType;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        namespace Settings;

        [Quanto.Quantize(Weights = QInt4, Group = 64, Exclude = new[] { "head*" })]
        public partial class Net : Module<Tensor, Tensor>
        {
            private readonly Linear fc = Linear(128, 128);
            private readonly Linear head = Linear(128, 4);
            [Quanto.Quantize(Weights = QFloat8E5M2, Activations = QFloat8E4M3Fn)]
            private readonly Linear headOverride = Linear(4, 4);
            private readonly LayerNorm norm = LayerNorm(128);
            [Quanto.Quantize(Activations = QInt8)]
            private readonly LayerNorm norm2 = LayerNorm(4);

            public Net() : base("Net") => RegisterComponents();

            public override Tensor forward(Tensor x) =>
                norm2.forward(headOverride.forward(head.forward(norm.forward(fc.forward(x)))));
        }
        """;

    [Test]
    public void Defaults_overrides_and_patterns_resolve_per_layer()
    {
        var (driver, output, diagnostics) = GeneratorHarness.Run(GeneratorHarness.Compile([new("Net", Source)]));
        string generated = driver.GetRunResult().GeneratedTrees.Single().ToString();

        Assert.That(diagnostics, Is.Empty);
        Assert.That(GeneratorHarness.Problems(output).Select(d => d.ToString()), Is.Empty);
        Assert.That(generated, Does.Contain("_fcQuantized = new(\"fc\",\n        weights: global::Quanto.QType.QInt4, groupSize: 64);"));
        Assert.That(generated, Does.Not.Contain("_headQuantized"), "excluded by pattern: stays float");
        Assert.That(generated, Does.Contain("weights: global::Quanto.QType.QFloat8E5M2, " +
                                            "activations: global::Quanto.QType.QFloat8E4M3Fn);"),
            "an attribute on the field wins over the pattern and drops the 4-bit group");
        Assert.That(generated, Does.Contain("_normQuantized = new(\"norm\");"),
            "a LayerNorm without quantized activations has a slot (a run-time override may give it a twin)");
        Assert.That(generated, Does.Not.Contain("\\\"norm\\\""), "but no entry in the compile-time map");
        Assert.That(generated,
            Does.Contain("_norm2Quantized = new(\"norm2\",\n        activations: global::Quanto.QType.QInt8);"));
        Assert.That(generated, Does.Contain(
            "\"\\\"headOverride\\\": {\\\"weights\\\": \\\"qfloat8_e5m2\\\", \\\"activations\\\": \\\"qfloat8_e4m3fn\\\"}, \" +"));
    }
}
