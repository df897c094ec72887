using Quanto.Native;

namespace Quanto;

/// <summary>What <see cref="TorchEnvironment.PrepareTorchSharpNative"/> found and did.</summary>
public enum TorchSharpNativeAction
{
    /// <summary>Not Linux, or the system libstdc++ provides every version the library asks for: nothing written.
    /// </summary>
    NotNeeded,

    /// <summary>The unmet GLIBCXX needs were marked weak in the application's own copy of the library.</summary>
    PatchedInPlace,

    /// <summary>The application's copy could not or must not be written (a NuGet package folder, a read-only
    /// install, or QUANTO_TORCHSHARP_NATIVE_FIX=copy): a patched copy under ~/.cache/quanto was loaded instead.
    /// </summary>
    LoadedPatchedCopy,

    /// <summary>TorchSharp's native library was already loaded in this process; nothing was changed.</summary>
    AlreadyLoaded,

    /// <summary>No libLibTorchSharp.so where TorchSharp looks for it (TorchSharp reports that itself).</summary>
    NotFound,

    /// <summary>Turned off by QUANTO_SKIP_TORCHSHARP_NATIVE_FIX=1.</summary>
    Skipped,
}

/// <summary>The outcome of the TorchSharp loader fix.</summary>
/// <param name="Action">What was done.</param>
/// <param name="Library">The libLibTorchSharp.so concerned (the patched copy for
/// <see cref="TorchSharpNativeAction.LoadedPatchedCopy"/>), or null.</param>
/// <param name="Weakened">The GLIBCXX versions marked weak (empty unless patched).</param>
public sealed record TorchSharpNativeFix(TorchSharpNativeAction Action, string? Library,
    IReadOnlyList<string> Weakened);

public static partial class TorchEnvironment
{
    /// <summary>
    /// Makes TorchSharp's native library loadable on Linux systems whose libstdc++ is older than the one it was built
    /// with. TorchSharp 0.107.0's libLibTorchSharp.so asks for GLIBCXX_3.4.32 (GCC 13) for one symbol it never calls;
    /// on Debian 12 (GLIBCXX_3.4.30) and Ubuntu 22.04 the loader refuses it and TorchSharp reports, misleadingly,
    /// that the application "doesn't contain a reference to libtorch-cpu-linux-x64". This marks each GLIBCXX version
    /// the running libstdc++ lacks as weak in the application's own copy of the library (never in the NuGet cache),
    /// or loads a patched copy from ~/.cache/quanto where that copy cannot be written.
    /// </summary>
    /// <remarks>
    /// Quanto.Runtime runs this from its module initializer, that is before the first use of any Quanto type, so a
    /// program that calls Quanto before TorchSharp needs nothing more. A program whose first TorchSharp call comes
    /// before any Quanto call (a tensor created at the top of Main, a static field holding a tensor) must call this
    /// first: once TorchSharp has failed to load, types it initialised while failing stay broken for the process.
    /// The package (and this repository's projects) also apply the same fix after Build and Publish; this covers a
    /// ProjectReference to Quanto.Runtime, which MSBuild targets do not follow. Idempotent and thread-safe: after one
    /// success, later calls return its outcome; a failure is retried.
    /// </remarks>
    /// <returns>What was found and done.</returns>
    /// <exception cref="InvalidOperationException">The library needs a libstdc++ version this system lacks and
    /// neither its copy nor a patched copy could be prepared; the message names the file, the missing versions and
    /// what to do (install libstdc++ from GCC 13 or newer, or make the folder writable).</exception>
    public static TorchSharpNativeFix PrepareTorchSharpNative() => TorchSharpNativeLoader.Prepare();
}
