using NUnit.Framework;

namespace Quanto.Tests.Generators;

/// <summary>Where hoisting a layer call into locals could change what runs, the stubs nest in place instead; the
/// result compiles without warnings.</summary>
[TestFixture]
public sealed class RewriteTests
{
    private const string Source = """
        using System;
        using TorchSharp.Modules;
        using static Quanto.QType;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        namespace Rewrites;

        [Quanto.Quantize(Weights = QInt8)]
        public partial class Net : Module<Tensor, Tensor>
        {
            private readonly Linear fc1 = Linear(4, 4);
            private readonly Linear fc2 = Linear(4, 4);
            private readonly bool _wide = true;

            public Net() : base("Net") => RegisterComponents();

            public override Tensor forward(Tensor x)
            {
                Tensor y = _wide ? fc1.forward(x) : fc2.forward(x);
                Func<Tensor, Tensor> late = t => fc2.forward(t);
                if (_wide) y = fc1.forward(y);
                return late(y);
            }
        }
        """;

    [Test]
    public void Branches_and_lambdas_keep_the_stubs_in_place()
    {
        var (driver, output, diagnostics) = GeneratorHarness.Run(GeneratorHarness.Compile([new("Net", Source)]));
        string generated = driver.GetRunResult().GeneratedTrees.Single().ToString();

        Assert.That(diagnostics, Is.Empty);
        Assert.That(GeneratorHarness.Problems(output).Select(d => d.ToString()), Is.Empty);
        Assert.That(generated, Does.Contain(
            "Tensor y = _wide ? _fc1Quantized.OutputStub(_fc1Quantized.Compute(_fc1Quantized.InputStub(x))) " +
            ": _fc2Quantized.OutputStub(_fc2Quantized.Compute(_fc2Quantized.InputStub(x)));"));
        Assert.That(generated, Does.Contain(
            "late = t => _fc2Quantized.OutputStub(_fc2Quantized.Compute(_fc2Quantized.InputStub(t)));"));
        // The if body runs its steps only when taken: they move into a block under the if.
        Assert.That(generated, Does.Contain(
            "if (_wide)\n        {\n            // fc1: quant stub -> quantized linear -> dequant stub\n" +
            "            var fc1Input = _fc1Quantized.InputStub(y);"));
    }
}
