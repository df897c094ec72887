using Quanto.Kernels.Cpu;
using static TorchSharp.torch;

namespace Quanto;

/// <summary>
/// Runs a block with libtorch's intra-op thread count set to a given value on the calling thread, then puts the
/// previous count back. libtorch (OpenMP build) keeps the count per calling thread for its parallel regions and
/// MKL's, so the scope does not change other threads already running libtorch ops.
/// </summary>
/// <remarks>Why Quanto.Models' Bert and Llama and GPTQ's column steps use it: a BERT forward is some 20 libtorch ops
/// per layer (LayerNorm, GELU, softmax, the attention matmuls over 32-wide heads, adds) on a few thousand to a few
/// hundred thousand elements; each one with more than one thread wakes libtorch's OpenMP pool, and its static split
/// waits for the slowest thread, so a pool thread that the OS has descheduled (a shared machine) stalls every op for
/// a scheduler slice. On the calling thread alone they cost microseconds. The quantized Linears run on Quanto's own
/// kernel pool (<see cref="Kernels.Cpu.CpuKernels.Threads"/>), which this does not touch.</remarks>
internal readonly struct TorchThreads : IDisposable
{
    /// <summary>Inputs of fewer tokens than this (batch x new tokens) are small: Quanto.Models' models run libtorch's
    /// ops on them on one thread, where larger inputs' ops are big enough to share (Bert.IntraOpThreads has the
    /// measurement).</summary>
    internal const long SmallInputTokens = 128;

    /// <summary>Tensors of fewer elements than this (1 Mi) are small for iterative weight algorithms (HQQ's
    /// refinement, a few hundred elementwise ops per weight): they run on one libtorch thread, where an op costs
    /// well under a millisecond and waiting for a descheduled OpenMP thread would cost more than the second thread
    /// saves. Measured on a loaded 2-core machine: the 6-layer MiniLM's GPTQ recipe test spent 76% of its samples in
    /// libgomp's barrier (perf), 5 min 14 s against 43 s with one thread.</summary>
    internal const long SmallTensorElements = 1L << 20;

    private readonly int _restore;
    private readonly CpuParallel.WarmScope _warm;

    /// <summary>Sets the count to <paramref name="threads"/> (null: leaves it). At one thread, Quanto's kernel
    /// workers also stay awake between jobs for the scope (<see cref="CpuParallel.Warm"/>): libtorch's ops then run
    /// on the caller alone, so the workers' cores are otherwise idle.</summary>
    public TorchThreads(int? threads)
    {
        _restore = 0;
        _warm = default;
        if (threads is not int wanted) return;
        if (wanted == 1) _warm = CpuParallel.Warm();
        int current = get_num_threads();
        if (current == wanted) return;
        set_num_threads(wanted);
        _restore = current;
    }

    /// <summary>Whether <paramref name="ids"/> holds fewer than <see cref="SmallInputTokens"/> tokens.</summary>
    internal static bool IsSmall(Tensor ids) => ids.numel() < SmallInputTokens;

    /// <summary>One thread for a tensor of fewer than <see cref="SmallTensorElements"/> elements, else libtorch's
    /// setting.</summary>
    internal static TorchThreads For(Tensor tensor) => For(tensor.numel());

    /// <summary>One thread for work on fewer than <see cref="SmallTensorElements"/> weight elements, else libtorch's
    /// setting.</summary>
    internal static TorchThreads For(long elements) => new(elements < SmallTensorElements ? 1 : null);

    /// <summary>Puts the previous count back.</summary>
    public void Dispose()
    {
        _warm.Dispose();
        if (_restore > 0) set_num_threads(_restore);
    }
}
