using System.Runtime.CompilerServices;
using Quanto.Nn;
using static TorchSharp.torch;

namespace Quanto.Generated;

/// <summary>
/// The float calls of a [Quantize] model's quantized layers. Once the model is frozen, each such layer's float weight
/// is released (its quantized twin holds the weight); the generator then routes the float calls the model's own code
/// makes on those layers (<c>fc1.forward(x)</c> in <c>forward</c>, its helpers, other methods) through here, with C#
/// interceptors (enabled by <c>InterceptorsNamespaces</c> listing <c>Quanto.Generated</c>, which the Quanto package
/// sets), so that such a call fails with an <see cref="InvalidOperationException"/> naming the layer and what to run
/// instead, not with a libtorch shape error. Calls on layers that still hold their weight run unchanged.
/// </summary>
public static class FloatLayers
{
    private static readonly ConditionalWeakTable<nn.Module, Released> Frozen = new();

    /// <summary><c>layer.forward(input)</c>, refused when the layer's float weight was released by Freeze.</summary>
    /// <exception cref="InvalidOperationException">The layer was frozen.</exception>
    public static Tensor Forward(nn.Module<Tensor, Tensor> layer, Tensor input)
    {
        ArgumentNullException.ThrowIfNull(layer);
        Check(layer);
        return layer.forward(input);
    }

    /// <summary><c>layer.call(input)</c> (with its hooks), refused when the layer's float weight was released.
    /// </summary>
    /// <exception cref="InvalidOperationException">The layer was frozen.</exception>
    public static Tensor Call(nn.Module<Tensor, Tensor> layer, Tensor input)
    {
        ArgumentNullException.ThrowIfNull(layer);
        Check(layer);
        return layer.call(input);
    }

    /// <summary>Notes that Freeze released <paramref name="layer"/>'s float weight.</summary>
    internal static void MarkReleased(nn.Module layer, LayerKind kind, string path, string model) =>
        Frozen.AddOrUpdate(layer, new Released(kind, path, model));

    private static void Check(nn.Module layer)
    {
        // A layer given a float weight again since (load_state_dict into a new parameter) runs again.
        if (!Frozen.TryGetValue(layer, out Released? released) || !released.Kind.IsReleased(layer)) return;
        throw new InvalidOperationException(
            $"'{released.Path}' of {released.Model} is frozen: Freeze() released its float weight (the quantized " +
            $"{released.Kind.QuantizedType.Name} holds it), so its float forward cannot run. Run the model with " +
            "ForwardQuantized(...); for float outputs use a float model (a fresh instance with the float weights).");
    }

    private sealed record Released(LayerKind Kind, string Path, string Model);
}
