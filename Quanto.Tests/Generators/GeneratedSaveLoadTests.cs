using NUnit.Framework;
using Quanto.Nn;
using Quanto.Tests.Generators.Samples;
using static TorchSharp.torch;

namespace Quanto.Tests.Generators;

/// <summary>Generated SaveQuantized / LoadQuantized: a frozen annotated model saved, then loaded into a fresh instance
/// (different initial weights), gives the same ForwardQuantized output, in both formats. Mlp (README's example) uses
/// Group = 32: safetensors records it in the quanto_group_sizes metadata, which optimum-quanto ignores.</summary>
public sealed class GeneratedSaveLoadTests
{
    [TestCase(".safetensors")] // Group = 32 is recorded in quanto_group_sizes (refused before: issue 13 item 6)
    [TestCase(".qnt")]
    public void MlpRoundTrips(string extension) => RoundTrip(new Twin<Mlp>(() => new Mlp(), m => m.Quantize(),
        m => m.Freeze(), (m, x) => m.ForwardQuantized(x), (m, p) => m.SaveQuantized(p), (m, p) => m.LoadQuantized(p),
        m => m.QuantizedModules()), [4, 64], extension);

    [TestCase(".safetensors")]
    [TestCase(".qnt")]
    public void CnnRoundTrips(string extension) => RoundTrip(new Twin<Cnn>(() => new Cnn(), m => m.Quantize(),
        m => m.Freeze(), (m, x) => m.ForwardQuantized(x), (m, p) => m.SaveQuantized(p), (m, p) => m.LoadQuantized(p),
        m => m.QuantizedModules()), [4, 3, 8, 8], extension);

    /// <summary>The generated members of one sample class, as typed calls.</summary>
    private sealed record Twin<T>(Func<T> Create, Action<T> Quantize, Action<T> Freeze, Func<T, Tensor, Tensor> Forward,
        Action<T, string> Save, Action<T, string> Load, Func<T, IEnumerable<QModule>> Modules)
        where T : nn.Module;

    private static void RoundTrip<T>(Twin<T> twin, long[] inputShape, string extension) where T : nn.Module
    {
        string dir = Path.Combine(Path.GetTempPath(), "quanto-gen-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            using var noGrad = no_grad();
            random.manual_seed(1);
            using T model = twin.Create();
            model.eval();
            twin.Quantize(model);
            twin.Freeze(model);
            using Tensor x = randn(inputShape);
            using Tensor expected = twin.Forward(model, x);
            string path = Path.Combine(dir, "model" + extension);
            twin.Save(model, path);

            random.manual_seed(2);
            using T fresh = twin.Create();
            fresh.eval();
            twin.Load(fresh, path);
            using Tensor actual = twin.Forward(fresh, x);
            Assert.That(actual.data<float>().ToArray(), Is.EqualTo(expected.data<float>().ToArray()));
            Assert.That(twin.Modules(fresh).All(m => m.IsFrozen), Is.True);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
