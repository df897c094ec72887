using static TorchSharp.torch;

namespace Quanto.Models;

/// <summary>Checks on model inputs that libtorch would otherwise report as a native error (or abort on).</summary>
internal static class InputChecks
{
    /// <summary>Every id in [0, size).</summary>
    /// <exception cref="ArgumentException">An id outside the range, naming both.</exception>
    internal static void Range(Tensor ids, long size, string what, string limit)
    {
        if (ids.NumberOfElements == 0) return;
        long min = ids.min().item<long>(), max = ids.max().item<long>();
        if (min < 0 || max >= size)
        {
            throw new ArgumentException(
                $"{what} hold values in [{min}, {max}]; they must lie in [0, {size}) ({limit} = {size}).", what);
        }
    }
}
