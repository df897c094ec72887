using System.Reflection;
using System.Runtime.ExceptionServices;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Nn;

/// <summary>
/// One quantizable layer kind of the registry (<see cref="LayerKinds"/>): the TorchSharp layer type, its quantized
/// module type, the factory that builds one from the other, the saved-state layout and the CLI's tensor rule. Read
/// from the <see cref="QuantizedLayerAttribute"/> on the quantized module type; never built by hand.
/// </summary>
public sealed class LayerKind
{
    private readonly ConstructorInfo _factory;
    private readonly PropertyInfo? _weight;

    private LayerKind(Type quantizedType, QuantizedLayerAttribute attribute)
    {
        QuantizedType = quantizedType;
        FloatType = attribute.FloatType;
        Operation = attribute.Operation.Length > 0 ? attribute.Operation : FloatType.Name.ToLowerInvariant();
        QuantizesWeights = attribute.QuantizesWeights;
        WeightRank = attribute.QuantizesWeights ? attribute.WeightRank : 0;
        QuantizedByCli = attribute.QuantizesWeights && attribute.QuantizedByCli;
        _factory = quantizedType.GetConstructor([FloatType, typeof(LayerSettings)]) ?? throw Invalid(
            $"has no public constructor ({FloatType.Name} source, {nameof(LayerSettings)} settings)");
        _weight = FloatType.GetProperty("weight", BindingFlags.Public | BindingFlags.Instance);
        if (QuantizesWeights && (_weight?.CanWrite != true || _weight.PropertyType != typeof(Parameter)))
            throw Invalid($"quantizes weights, but {FloatType.Name} has no settable 'Parameter weight' property");
        if (QuantizesWeights && WeightRank < 2) throw Invalid("quantizes weights but gives no WeightRank >= 2");

        InvalidOperationException Invalid(string why) => new(
            $"Layer kind {quantizedType.Name} ([{nameof(QuantizedLayerAttribute)}({FloatType.Name})]) {why}.");
    }

    /// <summary>The kind's name: the TorchSharp layer type's ("Linear").</summary>
    public string Name => FloatType.Name;

    /// <summary>The TorchSharp layer type (exact: a layer of a subclass is not of this kind).</summary>
    public Type FloatType { get; }

    /// <summary>The quantized module type (a <see cref="QModule"/>).</summary>
    public Type QuantizedType { get; }

    /// <summary>The quantized operation in words ("linear"), for messages and generated comments.</summary>
    public string Operation { get; }

    /// <summary>False for kinds whose weights stay float (LayerNorm): replaced only when activations are quantized.
    /// </summary>
    public bool QuantizesWeights { get; }

    /// <summary>
    /// Saved-state layout: the rank of the weight a module of this kind stores quantized (per output channel along
    /// axis 0, rows of the other dimensions, in optimum-quanto's <c>weight._data</c> / <c>weight._scale</c> /
    /// <c>weight._shift</c> keys); 0 when the weight stays float (saved as <c>weight</c>). Every kind also saves its
    /// float <c>bias</c> (when it has one) and the scalar <c>input_scale</c> and <c>output_scale</c>.
    /// </summary>
    public int WeightRank { get; }

    /// <summary>The CLI's tensor rule: <c>quanto quantize</c> quantizes float <c>*.weight</c> tensors of
    /// <see cref="WeightRank"/> dimensions by default.</summary>
    public bool QuantizedByCli { get; }

    /// <summary>Builds the quantized module for <paramref name="layer"/>, sharing its parameters (dynamic mode
    /// until frozen). A kind whose weights stay float gets <see cref="LayerSettings.Weights"/> cleared.</summary>
    /// <param name="layer">A layer of exactly <see cref="FloatType"/>.</param>
    /// <param name="settings">The qtypes and the layer's path.</param>
    /// <exception cref="ArgumentException"><paramref name="layer"/> is not of this kind.</exception>
    /// <exception cref="NotSupportedException">The layer uses an option the quantized module does not support
    /// (the message names the layer and the option).</exception>
    public QModule Create(nn.Module layer, LayerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(layer);
        ArgumentNullException.ThrowIfNull(settings);
        if (layer.GetType() != FloatType)
        {
            throw new ArgumentException(
                $"'{settings.Path}' is a {layer.GetType().Name}, not a {Name}.", nameof(layer));
        }
        if (!QuantizesWeights) settings = settings with { Weights = null, GroupSize = null, Optimizer = null };
        try
        {
            return (QModule)_factory.Invoke([layer, settings]);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            ExceptionDispatchInfo.Throw(e.InnerException);
            throw;
        }
    }

    /// <summary>
    /// Replaces the float weight of <paramref name="layer"/> (whose quantized twin is frozen and holds the weight)
    /// by an empty parameter through its settable <c>weight</c> property, which disposes the old tensor, so the float
    /// memory really drops. Used by generated [Quantize] models, which keep the user's layer beside its twin.
    /// </summary>
    /// <param name="layer">A layer of this kind.</param>
    /// <exception cref="InvalidOperationException">The kind's weights stay float: there is nothing to release.
    /// </exception>
    public void ReleaseFloatWeight(nn.Module layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        if (_weight is null || !QuantizesWeights)
            throw new InvalidOperationException($"{Name} weights stay float; they are never released.");
        var current = (Parameter)_weight.GetValue(layer)!;
        if (current.NumberOfElements == 0) return;
        _weight.SetValue(layer, new Parameter(empty([0], current.dtype, current.device), requires_grad: false));
    }

    /// <summary>True when <paramref name="layer"/>'s float weight was released (see <see cref="ReleaseFloatWeight"/>).
    /// </summary>
    public bool IsReleased(nn.Module layer) =>
        QuantizesWeights && _weight?.GetValue(layer) is Parameter { NumberOfElements: 0 };

    /// <inheritdoc />
    public override string ToString() => $"{Name} -> {QuantizedType.Name}";

    /// <summary>The kind a quantized module type registers, or null when it carries no attribute.</summary>
    internal static LayerKind? FromType(Type quantizedType) =>
        quantizedType.GetCustomAttribute<QuantizedLayerAttribute>() is { } attribute &&
        typeof(QModule).IsAssignableFrom(quantizedType) && !quantizedType.IsAbstract
            ? new LayerKind(quantizedType, attribute)
            : null;
}
