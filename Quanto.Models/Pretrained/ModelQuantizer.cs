using Quanto.Quantization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Models.Pretrained;

/// <summary>
/// optimum-quanto's quantize-then-freeze for a whole model, which also releases the float weights the frozen
/// layers no longer use: the swapped-out Linear still references its weight, so without this a 1.1B-parameter
/// model's 4.4 GB of float32 weights would stay allocated until the garbage collector finalised them.
/// </summary>
internal static class ModelQuantizer
{
    internal static QuantizationReport QuantizeAndFreeze(nn.Module model, QType? weights, QType? activations,
        Optimizer? optimizer, IEnumerable<string>? include, IEnumerable<string>? exclude, int? groupSize)
    {
        Dictionary<string, nn.Module> before = HuggingFace.ParameterSlots.Modules(model);
        QuantizationReport report = Quantizer.Quantize(model, weights, activations, optimizer, include, exclude,
            groupSize);
        Quantizer.Freeze(model);
        var live = model.parameters().Select(p => p.Handle).ToHashSet();
        foreach (QuantizedModuleInfo info in report.Quantized)
        {
            // A weight still in the model (a tied embedding) or still used by a float-weight module stays.
            if (before[info.Path] is Linear { weight: Parameter weight } && !live.Contains(weight.Handle))
                weight.Dispose();
        }
        return report;
    }
}
