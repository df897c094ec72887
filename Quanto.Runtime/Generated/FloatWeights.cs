using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Generated;

/// <summary>
/// Called by generated <c>Freeze</c>/<c>LoadQuantized</c> code. A generated model keeps the user's float layer
/// (a <c>Linear</c> field cannot hold a QLinear: TorchSharp's layers are sealed) next to its quantized twin; once the
/// twin holds the quantized weight, the float layer's weight is replaced by an empty parameter through its settable
/// <c>weight</c> property, which disposes the old tensor, so the float memory really drops. The float
/// <c>forward</c> of that layer no longer works afterwards; ForwardQuantized does. Bias and the layer's other
/// parameters are kept: the quantized twin shares them.
/// </summary>
public static class FloatWeights
{
    /// <summary>Drops <paramref name="layer"/>'s float weight (its quantized twin is frozen).</summary>
    public static void Release(Linear layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        layer.weight = Empty(layer.weight);
    }

    /// <summary>Drops <paramref name="layer"/>'s float weight (its quantized twin is frozen).</summary>
    public static void Release(Conv2d layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        layer.weight = Empty(layer.weight);
    }

    private static Parameter Empty(Tensor like) =>
        new(empty([0], like.dtype, like.device), requires_grad: false);
}
