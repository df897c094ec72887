using static TorchSharp.torch;

namespace Quanto.Models;

/// <summary>
/// Runs a block with libtorch's intra-op thread count set to a given value on the calling thread, then puts the
/// previous count back. libtorch (OpenMP build) keeps the count per calling thread for its parallel regions and
/// MKL's, so the scope does not change other threads already running libtorch ops.
/// </summary>
/// <remarks>Why the models use it: a BERT forward is some 20 libtorch ops per layer (LayerNorm, GELU, softmax, the
/// attention matmuls over 32-wide heads, adds) on a few thousand to a few hundred thousand elements; each one with
/// more than one thread wakes libtorch's OpenMP pool, and its static split waits for the slowest thread, so a pool
/// thread that the OS has descheduled (a shared machine) stalls every op for a scheduler slice. On the calling thread
/// alone they cost microseconds. The quantized Linears run on Quanto's own kernel pool
/// (<see cref="Kernels.Cpu.CpuKernels.Threads"/>), which this does not touch.</remarks>
internal readonly struct TorchThreads : IDisposable
{
    /// <summary>Inputs of fewer tokens than this (batch x new tokens) are small: the models run libtorch's ops on
    /// them on one thread, where larger inputs' ops are big enough to share (Bert.IntraOpThreads has the
    /// measurement).</summary>
    internal const long SmallInputTokens = 128;

    private readonly int _restore;

    /// <summary>Sets the count to <paramref name="threads"/> (null: leaves it).</summary>
    public TorchThreads(int? threads)
    {
        _restore = 0;
        if (threads is not int wanted) return;
        int current = get_num_threads();
        if (current == wanted) return;
        set_num_threads(wanted);
        _restore = current;
    }

    /// <summary>Whether <paramref name="ids"/> holds fewer than <see cref="SmallInputTokens"/> tokens.</summary>
    internal static bool IsSmall(Tensor ids) => ids.numel() < SmallInputTokens;

    /// <summary>Puts the previous count back.</summary>
    public void Dispose()
    {
        if (_restore > 0) set_num_threads(_restore);
    }
}
