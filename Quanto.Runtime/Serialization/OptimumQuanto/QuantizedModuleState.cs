using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// The saved state of one quantized module (QLinear, QConv2d...) in optimum-quanto's keys: a frozen quantized weight
/// or, before freezing, the float <c>weight</c>; the float <c>bias</c>; the scalar <c>input_scale</c> and
/// <c>output_scale</c> buffers (shape [], 1.0 until calibrated). The module layer converts its fields to and from
/// this; it owns its tensors.
/// </summary>
public sealed class QuantizedModuleState : IDisposable
{
    /// <summary>The frozen quantized weight, or null when <see cref="FloatWeight"/> is set.</summary>
    public QuantizedWeight? Weight { get; init; }

    /// <summary>The float weight of a module that is not frozen (or whose weights are not quantized).</summary>
    public Tensor? FloatWeight { get; init; }

    /// <summary>The float bias, or null when the module has none.</summary>
    public Tensor? Bias { get; init; }

    /// <summary>The static input activation scale, shape [].</summary>
    public Tensor? InputScale { get; init; }

    /// <summary>The static output activation scale, shape [].</summary>
    public Tensor? OutputScale { get; init; }

    /// <summary>Adds this state's tensors (as views) under <paramref name="modulePath"/> in optimum-quanto's keys.
    /// </summary>
    /// <param name="modulePath">The module path ("" for the root).</param>
    /// <param name="target">Receives the tensors; it owns the views it gets.</param>
    /// <param name="requestedGroupSize">See <see cref="QuantizedWeightState.Write"/>.</param>
    public void Write(string modulePath, IDictionary<string, Tensor> target,
        int requestedGroupSize = Quantization.GroupSize.Default)
    {
        ArgumentNullException.ThrowIfNull(target);
        if ((Weight is null) == (FloatWeight is null))
            throw new InvalidOperationException("Exactly one of Weight and FloatWeight must be set.");
        if (Weight is not null) QuantizedWeightState.Write(Weight, modulePath, target, requestedGroupSize);
        WriteWithoutWeight(modulePath, target);
    }

    /// <summary>Adds everything but a quantized weight (float weight, bias, scales) as views.</summary>
    internal void WriteWithoutWeight(string modulePath, IDictionary<string, Tensor> target)
    {
        if (FloatWeight is not null) target.Add(QuantoKeys.Join(modulePath, QuantoKeys.Weight), FloatWeight.alias());
        if (Bias is not null) target.Add(QuantoKeys.Join(modulePath, QuantoKeys.Bias), Bias.alias());
        if (InputScale is not null) target.Add(QuantoKeys.Join(modulePath, QuantoKeys.InputScale), InputScale.alias());
        if (OutputScale is not null)
            target.Add(QuantoKeys.Join(modulePath, QuantoKeys.OutputScale), OutputScale.alias());
    }

    /// <summary>
    /// Reads a module's state, as optimum-quanto's _load_from_state_dict does: a float <c>weight</c> key means the
    /// module was saved before freezing; otherwise the quantized weight keys of the map's qtype are read.
    /// </summary>
    /// <param name="source">The loaded state dict (keys are marked used).</param>
    /// <param name="modulePath">The module path.</param>
    /// <param name="spec">The module's entry in the quantization map.</param>
    /// <param name="weightShape">The module's float weight shape.</param>
    /// <param name="hasBias">Whether the module has a bias.</param>
    /// <param name="groupSize">The exact group size for 2/4-bit weights, when known (a .qnt package stores it);
    /// null re-derives it from the shape as optimum-quanto does.</param>
    /// <exception cref="QuantoFormatException">A key is missing, or a dtype or shape disagrees.</exception>
    public static QuantizedModuleState Read(StateDict source, string modulePath, QuantizationSpec spec,
        ReadOnlySpan<long> weightShape, bool hasBias, int? groupSize = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(spec);
        long[] shape = weightShape.ToArray();
        string floatKey = QuantoKeys.Join(modulePath, QuantoKeys.Weight);
        QuantizedWeight? weight = null;
        Tensor? floatWeight = null;
        if (source.ContainsKey(floatKey) || spec.Weights is null)
        {
            floatWeight = source.Take(floatKey, shape).alias();
        }
        else if (groupSize is int exact)
        {
            weight = QuantizedWeightState.ReadExact(source, modulePath, spec.Weights.Value, shape, exact);
        }
        else
        {
            weight = QuantizedWeightState.Read(source, modulePath, spec.Weights.Value, shape);
        }
        return new QuantizedModuleState
        {
            Weight = weight,
            FloatWeight = floatWeight,
            Bias = hasBias ? source.Take(QuantoKeys.Join(modulePath, QuantoKeys.Bias), [shape[0]]).alias() : null,
            InputScale = source.Take(QuantoKeys.Join(modulePath, QuantoKeys.InputScale), []).alias(),
            OutputScale = source.Take(QuantoKeys.Join(modulePath, QuantoKeys.OutputScale), []).alias(),
        };
    }

    /// <summary>Disposes the tensors.</summary>
    public void Dispose()
    {
        Weight?.Dispose();
        FloatWeight?.Dispose();
        Bias?.Dispose();
        InputScale?.Dispose();
        OutputScale?.Dispose();
    }
}
