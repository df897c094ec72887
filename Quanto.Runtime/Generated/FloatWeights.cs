using Quanto.Nn;
using static TorchSharp.torch;

namespace Quanto.Generated;

/// <summary>
/// Called by generated <c>Freeze</c>/<c>LoadQuantized</c> code. A generated model keeps the user's float layer
/// (a <c>Linear</c> field cannot hold a QLinear: TorchSharp's layers are sealed) next to its quantized twin; once the
/// twin holds the quantized weight, the float layer's weight is replaced by an empty parameter
/// (<see cref="LayerKind.ReleaseFloatWeight"/>), so the float memory really drops. The float <c>forward</c> of that
/// layer no longer works afterwards; ForwardQuantized does. Bias and the layer's other parameters are kept: the
/// quantized twin shares them.
/// </summary>
public static class FloatWeights
{
    /// <summary>Drops <paramref name="layer"/>'s float weight (its quantized twin is frozen).</summary>
    /// <exception cref="ArgumentException">The layer is of no registered kind that quantizes weights.</exception>
    public static void Release(nn.Module layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        if (LayerKinds.For(layer) is not { QuantizesWeights: true } kind)
            throw new ArgumentException($"A {layer.GetType().Name} holds no weight a twin quantizes.", nameof(layer));
        kind.ReleaseFloatWeight(layer);
    }
}
