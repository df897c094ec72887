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

    /// <summary>The group size the module asked for (2/4-bit weights; null: optimum-quanto's 128). A checkpoint
    /// records it in its metadata (<see cref="QuantizedModel.GroupSizesMetadataKey"/>) so that readers re-derive
    /// the same groups; optimum-quanto ignores the record and re-derives from 128.</summary>
    public int? RequestedGroupSize { get; init; }

    /// <summary>Adds this state's tensors (as views) under <paramref name="modulePath"/> in optimum-quanto's keys.
    /// </summary>
    /// <param name="modulePath">The module path ("" for the root).</param>
    /// <param name="target">Receives the tensors; it owns the views it gets.</param>
    /// <param name="requestedGroupSize">See <see cref="QuantizedWeightState.Write"/> (default:
    /// <see cref="RequestedGroupSize"/>, else 128).</param>
    public void Write(string modulePath, IDictionary<string, Tensor> target,
        int? requestedGroupSize = null)
    {
        ArgumentNullException.ThrowIfNull(target);
        if ((Weight is null) == (FloatWeight is null))
            throw new InvalidOperationException("Exactly one of Weight and FloatWeight must be set.");
        if (Weight is not null)
        {
            QuantizedWeightState.Write(Weight, modulePath, target,
                requestedGroupSize ?? RequestedGroupSize ?? Quantization.GroupSize.Default);
        }
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
    /// <exception cref="QuantoFormatException">A key is missing, a dtype or shape disagrees, or a value is out of
    /// range (a NaN bias, a zero or NaN activation scale...).</exception>
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
            Bias = hasBias ? TakeBias(source, modulePath, [shape[0]]).alias() : null,
            InputScale = TakeScale(source, modulePath, QuantoKeys.InputScale).alias(),
            OutputScale = TakeScale(source, modulePath, QuantoKeys.OutputScale).alias(),
        };
    }

    /// <summary>Takes a module's bias, checked to be finite.</summary>
    internal static Tensor TakeBias(StateDict source, string modulePath, ReadOnlySpan<long> shape)
    {
        string key = QuantoKeys.Join(modulePath, QuantoKeys.Bias);
        Tensor bias = source.Take(key, shape);
        ValueChecks.Finite(source, key, bias);
        return bias;
    }

    /// <summary>Takes a module's input or output scale (a scalar), checked to be finite and positive.</summary>
    internal static Tensor TakeScale(StateDict source, string modulePath, string name)
    {
        string key = QuantoKeys.Join(modulePath, name);
        Tensor scale = source.Take(key, []);
        ValueChecks.ActivationScale(source, key, scale);
        return scale;
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
