using Quanto.Nn;
using Quanto.Quantization;
using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto;

/// <summary><c>model.Quantize(plan)</c> for eager models (a generated [Quantize] model's own Quantize takes the plan
/// through its generated members).</summary>
public static class QuantizationPlanExtensions
{
    /// <summary>
    /// Quantizes each layer the plan lists with its choice (qtype, group size, optimizer), as
    /// <see cref="Quantizer.Quantize(nn.Module, QType?, QType?, Optimizer?, IEnumerable{string}?,
    /// IEnumerable{string}?, int?, bool)"/> would one layer at a time (dynamic mode: freeze afterwards); layers it keeps
    /// float are left alone.
    /// </summary>
    /// <param name="model">The float model.</param>
    /// <param name="plan">The plan (<see cref="Quantizer.Plan(SensitivityReport, double)"/>).</param>
    /// <param name="activations">Activation qtype for every planned layer (null: float activations).</param>
    /// <returns>What was quantized and what was left float, over all planned layers.</returns>
    /// <exception cref="ArgumentException">A choice with 2/4-bit activations.</exception>
    public static QuantizationReport Quantize(this nn.Module model, QuantizationPlan plan, QType? activations = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(plan);
        foreach (LayerPlan layer in plan.Layers)
            QModule.CheckSettings(layer.Choice.Weights, activations, layer.Choice.GroupSize);
        var quantized = new List<QuantizedModuleInfo>();
        var skipped = new List<SkippedModuleInfo>();
        foreach (LayerPlan layer in plan.Layers)
        {
            if (layer.Choice.Weights is null && activations is null) continue;
            QuantizationReport one = Quantizer.Quantize(model, layer.Choice.Weights, activations,
                layer.Choice.Optimizer, include: [QuantizedModel.EscapePattern(layer.Path)],
                groupSize: layer.Choice.GroupSize, embeddings: true); // a planned table is asked for by path
            quantized.AddRange(one.Quantized);
            skipped.AddRange(one.Skipped);
        }
        return new QuantizationReport(quantized, skipped);
    }
}
