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

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);

    // c10::initLogging(): reads TORCH_CPP_LOG_LEVEL into c10's log level.
    [LibraryImport("c10", EntryPoint = "_ZN3c1011initLoggingEv")]
    private static partial void InitLogging();
}
