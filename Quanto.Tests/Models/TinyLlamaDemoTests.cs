using NUnit.Framework;
using Quanto.Tests.TestSupport;
using Quanto.TinyLlama;

namespace Quanto.Tests.Models;

/// <summary>The TinyLlama demo end to end at toy size: real corpus, BPE tokenizer file, training, every
/// configuration through FromHuggingFace / Quantize / SavePretrained / FromPretrained / Generate.</summary>
public sealed class TinyLlamaDemoTests : TempFolderTests
{
    [Test]
    public void EveryConfigurationRunsAndReloadsIdentically()
    {
        var output = new StringWriter();
        IReadOnlyList<DemoRow> rows = TinyLlamaDemo.Run(
            new DemoOptions(Folder, Steps: 21, Hidden: 64, Layers: 1, Vocab: 300, Batch: 2, Window: 32,
                EvalTokens: 1000), output);
        TinyLlamaDemo.Print(rows, output, TimeSpan.Zero);

        Assert.That(rows.Select(r => r.Name), Is.EqualTo(TinyLlamaDemo.Configurations().Select(c => c.Name)));
        DemoRow fp32 = rows[0];
        Assert.That(double.IsFinite(fp32.Perplexity), Is.True);
        // At toy size the model has barely trained; 8-bit and bf16 must still track its perplexity closely.
        foreach (string close in new[] { "bf16", "w8 (qint8)", "w-fp8 (e4m3fn)", "w8 dyn-a8" })
            Assert.That(rows.Single(r => r.Name == close).Perplexity, Is.EqualTo(fp32.Perplexity).Within(2).Percent);
        foreach (DemoRow row in rows.Skip(2))
        {
            Assert.That(row.ReloadedPerplexity, Is.EqualTo(row.Perplexity), row.Name);
            // At toy width every layer is under CpuKernels.FloatCopyLimit, so the CPU kernels also keep a float32
            // copy of each (counted in ModelBytes and shown in its own column); without them the model is smaller.
            Assert.That(row.Bytes - row.FloatCopyBytes, Is.LessThan(fp32.Bytes), row.Name);
        }
        Assert.That(rows.All(r => r.Continuation.Length > 0), Is.True);
        Assert.That(output.ToString(), Does.Contain("| w4 (qint4) |"));
    }
}
