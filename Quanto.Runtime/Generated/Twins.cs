using Quanto.Nn;

namespace Quanto.Generated;

/// <summary>Lifetime of the quantized twins that generated [Quantize] code builds beside the user's layers.</summary>
public static class Twins
{
    /// <summary>
    /// Disposes what <paramref name="twin"/> owns (its quantized weight, kernel layout and activation scales) but not
    /// the float parameters it shares with the user's layer, which stay that layer's. Null is ignored.
    /// </summary>
    /// <param name="twin">A quantized twin built by generated code, or null.</param>
    public static void Dispose(QModule? twin) => twin?.Abandon();

    /// <summary>The error for a nested [Quantize] model quantized on its own before its enclosing model.</summary>
    /// <param name="path">The nested model's module path ("blocks.0").</param>
    public static InvalidOperationException NestedAlreadyQuantized(string path) => new(
        $"'{path}' is already quantized: quantize the outermost [Quantize] model only (it quantizes the nested " +
        "ones), or call DisposeQuantized() on the nested model first.");
}
