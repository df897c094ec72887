using NUnit.Framework;
using Quanto.Nn;
using Quanto.Tests.Generators.Samples;
using static TorchSharp.torch;

namespace Quanto.Tests.Generators;

/// <summary>
/// Issue #13 item 5: after Freeze the model's float forward, and after DisposeQuantized any use of a quantized
/// layer, fail with an InvalidOperationException that names the layer and says what to call (not a libtorch shape
/// error). The float calls of the sample models compiled in this project go through the generated interceptors
/// (this repository's props enable them, as the package's do).
/// </summary>
[TestFixture]
public sealed class FrozenUseTests
{
    [Test]
    public void The_float_forward_runs_until_Freeze_and_is_refused_after_it()
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        using var model = new Mlp();
        var eager = new MlpEager();
        eager.load_state_dict(model.state_dict());
        Tensor x = randn(3, 64);
        model.Quantize();
        Assert.That(model.forward(x).data<float>().ToArray(), Is.EqualTo(eager.forward(x).data<float>().ToArray()),
            "before Freeze the intercepted float calls run unchanged");

        model.Freeze();

        var error = Assert.Throws<InvalidOperationException>(() => model.forward(x))!;
        Assert.That(error.Message, Does.Contain("'fc1' of Mlp is frozen").And.Contain("ForwardQuantized"));
        Assert.That(model.ForwardQuantized(x).shape, Is.EqualTo(new long[] { 3, 10 }));
        model.DisposeQuantized();
        Assert.Throws<InvalidOperationException>(() => model.forward(x), "the float weight stays released");
    }

    [Test]
    public void A_quantized_layer_used_after_DisposeQuantized_names_itself_and_what_to_call()
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        using var model = new Block();
        model.Quantize();
        QModule fc1 = model.QuantizedModules().Single(m => m.Path == "fc1");
        model.DisposeQuantized();

        var twin = Assert.Throws<InvalidOperationException>(() => fc1.forward(randn(2, 32)))!;
        Assert.That(twin.Message, Does.Contain("QLinear 'fc1'").And.Contain("call Quantize()"));
        var forward = Assert.Throws<InvalidOperationException>(() => model.ForwardQuantized(randn(2, 32)))!;
        Assert.That(forward.Message, Does.Contain("Block is not quantized yet").And.Contain("call Quantize() first"));
        Assert.Throws<InvalidOperationException>(() => model.Freeze());
    }

    [Test]
    public void Interceptors_are_generated_only_where_the_project_enables_them()
    {
        string source = ModelStyleCorpus.Entries().Single(e => e.Name == "TorchSharp examples style").Source;
        var sources = new[] { new KeyValuePair<string, string>("Corpus", ModelStyleCorpus.Usings + source) };
        var (on, output, _) = GeneratorHarness.Run(
            GeneratorHarness.Compile(sources, options: GeneratorHarness.WithInterceptors),
            GeneratorHarness.Driver(GeneratorHarness.WithInterceptors));
        string interceptors = on.GetRunResult().GeneratedTrees
            .Single(t => t.FilePath.EndsWith("TsMlp.Interceptors.g.cs", StringComparison.Ordinal)).ToString();
        Assert.That(interceptors, Does.Contain("InterceptsLocation(1, ").And.Contain("FloatLayers.Forward(layer, "));
        Assert.That(interceptors.Split("[global::System.Runtime.CompilerServices.InterceptsLocation").Length - 1,
            Is.EqualTo(2), "fc1.forward and fc2.forward; relu and drop are not quantized layers");
        Assert.That(GeneratorHarness.Problems(output).Where(d => !d.Id.StartsWith("QNT", StringComparison.Ordinal))
            .Select(d => d.ToString()), Is.Empty);

        var (off, _, _) = GeneratorHarness.Run(GeneratorHarness.Compile(sources));
        Assert.That(off.GetRunResult().GeneratedTrees.Select(t => Path.GetFileName(t.FilePath)),
            Is.EqualTo(new[] { "Corpus.Examples.TsMlp.Quantized.g.cs" }));
    }
}
