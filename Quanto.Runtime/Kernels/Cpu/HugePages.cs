using System.Runtime.InteropServices;

namespace Quanto.Kernels.Cpu;

/// <summary>
/// Native memory for prepared weights, backed by 2 MiB transparent huge pages where Linux offers them. Debian and
/// most distributions ship THP in "madvise" mode, so a plain allocation gets 4 KiB pages: a 16 MiB weight then spans
/// 4096 pages, and a GEMV that streams through many such weights spends its time in TLB misses and page-boundary
/// prefetcher restarts. Asking for huge pages (before the memory is first touched) made the rotating 4096² GEMV
/// 5-16% faster on this project's Zen 4 VM (int2 5%, int8 12%, int4 13%, fp8 16%; Quanto.Bench/README.md), and a
/// 2 MiB page takes one first-touch fault where 4 KiB pages take 512.
/// </summary>
internal static unsafe partial class HugePages
{
    private const long HugePageBytes = 2L << 20;
    private const int MadviseHugePage = 14; // MADV_HUGEPAGE

    /// <summary>False allocates plain pages (tests and benchmarks compare both).</summary>
    internal static bool Enabled { get; set; } = true;

    /// <summary>
    /// Allocates <paramref name="bytes"/>, 64-byte aligned; blocks of 2 MiB or more are 2 MiB aligned and advised as
    /// huge pages on Linux (where the kernel declines, they are ordinary pages). Free with <see cref="Free"/>.
    /// </summary>
    public static void* Allocate(long bytes)
    {
        if (!Enabled || bytes < HugePageBytes || !OperatingSystem.IsLinux())
            return NativeMemory.AlignedAlloc((nuint)bytes, 64);
        void* memory = NativeMemory.AlignedAlloc((nuint)bytes, (nuint)HugePageBytes);
        // Advice only: an error (no THP in this kernel) leaves ordinary pages, which work the same, slower.
        _ = Madvise(memory, (nuint)((bytes + 4095) & ~4095L), MadviseHugePage);
        return memory;
    }

    /// <summary>Frees memory from <see cref="Allocate"/>.</summary>
    public static void Free(void* memory) => NativeMemory.AlignedFree(memory);

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(void* address, nuint length, int advice);
}
