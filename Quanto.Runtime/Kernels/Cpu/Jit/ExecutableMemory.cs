using System.Runtime.InteropServices;

namespace Quanto.Kernels.Cpu.Jit;

/// <summary>
/// Pages for machine code assembled at run time, written while read/write and then switched to read/execute before
/// the first call (W^X: never writable and executable at once): mmap + mprotect on Linux, VirtualAlloc +
/// VirtualProtect on Windows. Kernels live as long as the process, so nothing is freed.
/// </summary>
internal static unsafe partial class ExecutableMemory
{
    private const int ProtRead = 1, ProtWrite = 2, ProtExec = 4;
    private const int MapPrivate = 0x02, MapAnonymous = 0x20;
    private const uint MemCommit = 0x1000, MemReserve = 0x2000, PageReadWrite = 0x04, PageExecuteRead = 0x20;

    /// <summary>True on the operating systems this class can allocate code pages on (64-bit Linux and Windows).</summary>
    public static bool IsSupported =>
        RuntimeInformation.ProcessArchitecture == Architecture.X64 &&
        (OperatingSystem.IsLinux() || OperatingSystem.IsWindows());

    /// <summary>Copies <paramref name="code"/> into new read/execute pages and returns their address.</summary>
    /// <exception cref="InvalidOperationException">The system refused the pages or the protection change (an
    /// SELinux or hardened-runtime policy that forbids run-time code); the message says which call failed.</exception>
    public static void* Publish(ReadOnlySpan<byte> code)
    {
        if (!IsSupported)
            throw new PlatformNotSupportedException("Run-time assembled kernels need 64-bit Linux or Windows on x64.");
        nuint size = (nuint)((code.Length + 4095) & ~4095);
        void* memory = OperatingSystem.IsWindows() ? WindowsWritable(size) : LinuxWritable(size);
        code.CopyTo(new Span<byte>(memory, code.Length));
        if (OperatingSystem.IsWindows()) WindowsExecutable(memory, size);
        else LinuxExecutable(memory, size);
        return memory;
    }

    private static void* LinuxWritable(nuint size)
    {
        void* memory = Mmap(null, size, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        if (memory == (void*)-1) throw Failure("mmap", Marshal.GetLastPInvokeError());
        return memory;
    }

    private static void LinuxExecutable(void* memory, nuint size)
    {
        if (Mprotect(memory, size, ProtRead | ProtExec) != 0)
        {
            int error = Marshal.GetLastPInvokeError();
            _ = Munmap(memory, size);
            throw Failure("mprotect(PROT_READ | PROT_EXEC)", error);
        }
    }

    private static void* WindowsWritable(nuint size)
    {
        void* memory = VirtualAlloc(null, size, MemCommit | MemReserve, PageReadWrite);
        if (memory == null) throw Failure("VirtualAlloc", Marshal.GetLastPInvokeError());
        return memory;
    }

    private static void WindowsExecutable(void* memory, nuint size)
    {
        if (!VirtualProtect(memory, size, PageExecuteRead, out _))
            throw Failure("VirtualProtect(PAGE_EXECUTE_READ)", Marshal.GetLastPInvokeError());
        _ = FlushInstructionCache(GetCurrentProcess(), memory, size);
    }

    private static InvalidOperationException Failure(string call, int error) => new(
        $"{call} failed (error {error}): this process may not run code assembled at run time. The CPU kernels fall " +
        "back to their managed paths when QUANTO_JIT=0 is set.");

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial void* Mmap(void* address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "mprotect", SetLastError = true)]
    private static partial int Mprotect(void* address, nuint length, int protection);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(void* address, nuint length);

    [LibraryImport("kernel32", SetLastError = true)]
    private static partial void* VirtualAlloc(void* address, nuint size, uint type, uint protection);

    [LibraryImport("kernel32", SetLastError = true)]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static partial bool VirtualProtect(void* address, nuint size, uint protection, out uint old);

    [LibraryImport("kernel32")]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static partial bool FlushInstructionCache(nint process, void* address, nuint size);

    [LibraryImport("kernel32")]
    private static partial nint GetCurrentProcess();
}
