using Quanto.Generated;
using Quanto.Quantization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Models.Pretrained;

/// <summary>
/// optimum-quanto's quantize-then-freeze for a whole model, which also disposes the float weights the frozen layers
/// no longer use: without this a 1.1B-parameter model's 4.4 GB of float32 weights would stay allocated until the
/// garbage collector finalised them.
/// </summary>
internal static class ModelQuantizer
{
    /// <summary>Through the [Quantize] model's generated lifecycle (the twins its generated code builds;
    /// ForwardQuantized runs them): what the model classes' own Quantize does. Freeze gives each quantized layer an
    /// empty weight; the float one is disposed here.</summary>
    internal static QuantizationReport Quantize<TModel>(TModel model, QType? weights, QType? activations,
        Optimizer? optimizer, IEnumerable<string>? include, IEnumerable<string>? exclude, int? groupSize)
        where TModel : nn.Module, IQuantizedModel
    {
        Dictionary<string, Parameter> before = LinearWeights(model);
        ModelQuantization lifecycle = model.Quantization;
        lifecycle.Quantize(weights, activations, groupSize, optimizer, include, exclude);
        lifecycle.Freeze();
        QuantizationReport report = lifecycle.Report();
        DisposeUnused(model, before, report);
        return report;
    }

    /// <summary>The eager path (<see cref="Quantizer.Quantize"/> swaps the layers in place), for callers that quantize
    /// a model layer by layer as they build it (Quanto.Bench's random models too large to hold float whole).</summary>
    internal static QuantizationReport QuantizeAndFreeze(nn.Module model, QType? weights, QType? activations,
        Optimizer? optimizer, IEnumerable<string>? include, IEnumerable<string>? exclude, int? groupSize)
    {
        Dictionary<string, Parameter> before = LinearWeights(model);
        QuantizationReport report = Quantizer.Quantize(model, weights, activations, optimizer, include, exclude,
            groupSize);
        Quantizer.Freeze(model);
        DisposeUnused(model, before, report);
        return report;
    }

    private static Dictionary<string, Parameter> LinearWeights(nn.Module model) =>
        HuggingFace.ParameterSlots.Modules(model)
            .Where(p => p.Value is Linear)
            .ToDictionary(p => p.Key, p => ((Linear)p.Value).weight);

    /// <summary>Disposes the float weights of the quantized layers that the model no longer holds.</summary>
    private static void DisposeUnused(nn.Module model, Dictionary<string, Parameter> before,
        QuantizationReport report)
    {
        var live = model.parameters().Select(p => p.Handle).ToHashSet();
        foreach (QuantizedModuleInfo info in report.Quantized)
        {
            // A weight still in the model (a tied embedding) stays; one its layer disposed when Freeze replaced it
            // (TorchSharp's weight setter does) is gone already.
            if (before.GetValueOrDefault(info.Path) is Parameter { IsInvalid: false } weight &&
                !live.Contains(weight.Handle))
            {
                weight.Dispose();
            }
        }
    }
}
