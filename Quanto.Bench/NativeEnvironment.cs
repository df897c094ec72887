using System.Runtime.InteropServices;

namespace Quanto.Bench;

/// <summary>Sets variables in the native environment (Environment.SetEnvironmentVariable does not, on Unix).</summary>
internal static partial class NativeEnvironment
{
    public static void SetIfUnset(string name, string value)
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(name) is not null) return;
        _ = SetEnv(name, value, 0);
        Environment.SetEnvironmentVariable(name, value);
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);
}
