using System.Runtime.InteropServices;

namespace Quanto.Kernels.Cpu;

/// <summary>
/// Per-thread native scratch for a kernel call's activation copies, kept between calls so that small layers do not
/// pay an allocation and a free (and the page faults of fresh memory) on every call. Blocks up to
/// <see cref="KeepBytes"/> stay with their thread (freed by a finalizer when the thread is gone); larger ones are
/// freed when the call ends. Two leases per thread at a time are kept (a call's activation copy and a work item's
/// own scratch); a third gets its own block.
/// </summary>
internal static unsafe class ScratchMemory
{
    /// <summary>The largest block a thread keeps (a 64 x 16384-float activation block).</summary>
    public const long KeepBytes = 4L << 20;

    [ThreadStatic] private static Block? _block;
    [ThreadStatic] private static Block? _second;

    /// <summary>At least <paramref name="bytes"/> of 64-byte aligned memory, zeroed when <paramref name="clear"/>.</summary>
    public static Lease Rent(long bytes, bool clear)
    {
        bytes = Math.Max(bytes, 64);
        Block? block = _block ??= new Block();
        if (block.Leased) block = _second ??= new Block();
        void* memory = bytes <= KeepBytes && !block.Leased ? block.Take(bytes) : NativeMemory.AlignedAlloc((nuint)bytes, 64);
        if (clear) NativeMemory.Clear(memory, (nuint)bytes);
        return new Lease(memory, memory == block.Pointer ? block : null);
    }

    /// <summary>A scratch block; dispose it when the call is done.</summary>
    internal readonly struct Lease : IDisposable
    {
        private readonly Block? _owner;

        internal Lease(void* memory, Block? owner)
        {
            Pointer = memory;
            _owner = owner;
        }

        public void* Pointer { get; }

        public void Dispose()
        {
            if (_owner is not null) _owner.Leased = false;
            else NativeMemory.AlignedFree(Pointer);
        }
    }

    /// <summary>One thread's kept block.</summary>
    internal sealed class Block
    {
        private long _bytes;

        public void* Pointer { get; private set; }

        public bool Leased { get; set; }

        public void* Take(long bytes)
        {
            if (_bytes < bytes)
            {
                if (Pointer != null) NativeMemory.AlignedFree(Pointer);
                Pointer = null;
                _bytes = 0;
                Pointer = NativeMemory.AlignedAlloc((nuint)bytes, 64);
                _bytes = bytes;
            }
            Leased = true;
            return Pointer;
        }

        ~Block()
        {
            if (Pointer != null) NativeMemory.AlignedFree(Pointer);
        }
    }
}
