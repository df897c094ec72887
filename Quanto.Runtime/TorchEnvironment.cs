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
    /// Keeps libtorch's C++ log to errors (TORCH_CPP_LOG_LEVEL=ERROR). On CPUs its NNPACK does not recognise (Zen 4
    /// among them) libtorch otherwise prints "Could not initialize NNPACK! Reason: Unsupported hardware." on every
    /// convolution.
    /// </summary>
    public static void QuietLogs() => SetIfUnset("TORCH_CPP_LOG_LEVEL", "ERROR");

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);
}
