using System.Runtime.InteropServices;

namespace Quanto;

/// <summary>
/// Settings libtorch reads from the process environment when it loads. Call these before the first TorchSharp call;
/// Environment.SetEnvironmentVariable alone does not reach native code on Unix, so the C library's setenv is used too.
/// </summary>
public static partial class TorchEnvironment
{
    /// <summary>Sets <paramref name="name"/> for native code and .NET unless the user already set it.</summary>
    /// <returns>True when this call set it.</returns>
    public static bool SetIfUnset(string name, string value)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (Environment.GetEnvironmentVariable(name) is not null) return false;
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()) _ = SetEnv(name, value, 0);
        Environment.SetEnvironmentVariable(name, value);
        return true;
    }

    /// <summary>
    /// Keeps libtorch's C++ log to errors. On CPUs its NNPACK does not recognise (Zen 4 among them) libtorch otherwise
    /// prints "Could not initialize NNPACK! Reason: Unsupported hardware." for convolutions, over and over. libtorch
    /// reads TORCH_CPP_LOG_LEVEL only in c10::initLogging(), which Python's torch calls and TorchSharp does not, so this
    /// sets the variable and calls it (exported by libc10). Without a loadable libc10 it only sets the variable.
    /// </summary>
    /// <returns>True when the log level was applied.</returns>
    public static bool QuietLogs()
    {
        SetIfUnset("TORCH_CPP_LOG_LEVEL", "ERROR");
        try
        {
            InitLogging();
            return true;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    /// <summary>
    /// Makes glibc keep freed blocks of up to <paramref name="maxBlockBytes"/> for reuse instead of returning them to
    /// the kernel. libtorch allocates each activation afresh (a conv output at batch 64 is several MB), and glibc by
    /// default maps blocks that large separately or trims the heap after freeing them, so every forward pays a page
    /// fault per 4 KiB of activations. On the 2-vCPU VMs this project measures on that is ~10 us per fault: the
    /// demo's CNN at batch 64 spent 25-30 ms of a 3.5 ms forward in 2,000-2,800 page faults. Process-wide; the cost is
    /// resident memory that is not handed back (at most what the largest forward used). Tensors must also be
    /// disposed promptly (a dispose scope per forward): tensors left to the finalizer keep the heap growing, and
    /// fresh heap faults just the same. Does nothing outside glibc Linux.
    /// </summary>
    /// <param name="maxBlockBytes">Largest block kept (glibc caps it at 32 MiB).</param>
    /// <returns>True when glibc accepted both settings.</returns>
    public static bool ReuseFreedMemory(int maxBlockBytes = 32 << 20)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBlockBytes, 128 << 10);
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            // M_MMAP_THRESHOLD (-3): blocks below it come from the heap; M_TRIM_THRESHOLD (-1): free heap top kept.
            bool mmap = MallOpt(-3, Math.Min(maxBlockBytes, 32 << 20)) == 1;
            bool trim = MallOpt(-1, int.MaxValue / 2) == 1;
            return mmap && trim;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int MallOpt(int parameter, int value);

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);

    // c10::initLogging(): reads TORCH_CPP_LOG_LEVEL into c10's log level.
    [LibraryImport("c10", EntryPoint = "_ZN3c1011initLoggingEv")]
    private static partial void InitLogging();
}
