using NUnit.Framework;
using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

/// <summary>What the model-level scale-tuning tests check after a run: the report's losses against the test's own
/// computation of the loss, a real improvement, and the integer codes untouched.</summary>
internal static class TunedModelChecks
{
    /// <summary>The unpacked codes of every quantized layer, by path.</summary>
    internal static Dictionary<string, Tensor> Codes(nn.Module model) => Quantizer.QuantizedModules(model)
        .ToDictionary(m => m.Path, m => ((WeightQBitsTensor)m.QuantizedWeight!).UnpackCodes());

    /// <summary>The tuned result was kept for <paramref name="layers"/> layers, its initial and final losses are
    /// <paramref name="before"/> and <paramref name="after"/> (measured by the test, to 0.1%), at least halved, and
    /// every layer still has the <paramref name="codes"/> it had.</summary>
    internal static void KeptWithTheSameCodes(ScaleTuningReport report, int layers, double before, double after,
        nn.Module model, Dictionary<string, Tensor> codes)
    {
        Assert.That(report.Kept, Is.True, report.ToString());
        Assert.That(report.Layers, Has.Count.EqualTo(layers));
        Assert.That(report.InitialLoss, Is.EqualTo(before).Within(0.1).Percent);
        Assert.That(report.FinalLoss, Is.EqualTo(after).Within(0.1).Percent);
        Assert.That(after, Is.LessThan(0.5 * before), $"loss {before:E3} -> {after:E3}");
        foreach (var module in Quantizer.QuantizedModules(model))
        {
            using Tensor now = ((WeightQBitsTensor)module.QuantizedWeight!).UnpackCodes();
            Assert.That(now.eq(codes[module.Path]).all().item<bool>(), Is.True, $"{module.Path}: the codes stay");
        }
    }
}
