using System.Diagnostics.CodeAnalysis;
using System.IO.Hashing;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace Quanto.Native;

/// <summary>
/// The run-time half of the Debian 12 loader fix (see build/WeakenGlibcxxVersions.cs): before TorchSharp loads its
/// native library, finds the libLibTorchSharp.so that TorchSharp's own load will pick, and when the libstdc++ this
/// process runs on lacks a GLIBCXX version it asks for, weakens those needs in the application's copy, or, where that
/// copy must not or cannot be written (the NuGet cache, a read-only install), loads a patched copy from the user's
/// cache folder first. Runs from Quanto.Runtime's module initializer, so a ProjectReference to Quanto.Runtime (which
/// MSBuild targets do not follow) is covered as well as the package.
/// </summary>
internal static class TorchSharpNativeLoader
{
    /// <summary>Environment variable: "1" or "true" turns the fix off (the MSBuild property
    /// QuantoSkipTorchSharpNativeFix does the same at build time).</summary>
    public const string SkipVariable = "QUANTO_SKIP_TORCHSHARP_NATIVE_FIX";

    /// <summary>Environment variable: "copy" never writes beside the application and loads a patched copy from the
    /// cache folder instead.</summary>
    public const string ModeVariable = "QUANTO_TORCHSHARP_NATIVE_FIX";

    private const string FileName = "libLibTorchSharp.so";
    private static readonly Lock Gate = new();
    private static TorchSharpNativeFix? _done;
    private static nint _copyHandle;

    [ModuleInitializer]
    [SuppressMessage("Usage", "CA2255:The 'ModuleInitializer' attribute should not be used in libraries",
        Justification = "TorchSharp loads its native library on its first call, before any Quanto code the user " +
                        "calls could fix it; the module initializer is the earliest point a ProjectReference offers.")]
    internal static void OnModuleLoad()
    {
        try
        {
            Prepare();
        }
        catch (InvalidOperationException e)
        {
            // TorchSharp's own message will blame a missing package reference: say what is really wrong first.
            Console.Error.WriteLine("Quanto: " + e.Message);
        }
    }

    /// <summary>Applies the fix once per process (later calls return the first outcome).</summary>
    /// <exception cref="InvalidOperationException">The library needs a libstdc++ version this system lacks and
    /// neither its copy nor a patched copy could be prepared; the message names the file, the versions and what to
    /// do.</exception>
    public static TorchSharpNativeFix Prepare()
    {
        lock (Gate)
        {
            return _done ??= Run();
        }
    }

    private static TorchSharpNativeFix Run()
    {
        if (!OperatingSystem.IsLinux()) return new(TorchSharpNativeAction.NotNeeded, null, []);
        if (Environment.GetEnvironmentVariable(SkipVariable) is "1" or "true")
            return new(TorchSharpNativeAction.Skipped, null, []);
        string? loaded = LoadedPath(FileName);
        if (loaded is not null) return new(TorchSharpNativeAction.AlreadyLoaded, loaded, []);
        string? library = Locate();
        if (library is null) return new(TorchSharpNativeAction.NotFound, null, []);

        // coreclr links libstdc++, so the one the loader will bind is already mapped into this process.
        string? libStdCxx = LoadedPath("libstdc++.so.6");
        byte[] elf;
        List<ElfVersionNeed> unmet;
        try
        {
            HashSet<string>? provided = GlibcxxVersions.ReadProvided(
                libStdCxx is null ? GlibcxxVersions.SystemLibStdCxx : [libStdCxx]);
            elf = File.ReadAllBytes(library);
            unmet = GlibcxxVersions.Unmet(GlibcxxVersions.Needs(elf, library), provided);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"cannot check {library} against this system's libstdc++ " +
                                                $"({libStdCxx ?? "not found"}): {e.Message}", e);
        }
        if (unmet.Count == 0) return new(TorchSharpNativeAction.NotNeeded, library, []);

        string[] versions = unmet.Select(n => n.Name).ToArray();
        GlibcxxVersions.Weaken(elf, unmet);
        Exception? inPlaceError = null;
        if (Environment.GetEnvironmentVariable(ModeVariable) != "copy" && !InPackageFolder(library))
        {
            try
            {
                GlibcxxVersions.WriteReplacing(library, elf);
                return new(TorchSharpNativeAction.PatchedInPlace, library, versions);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                inPlaceError = e;
            }
        }
        try
        {
            string copy = LoadPatchedCopy(library, elf);
            return new(TorchSharpNativeAction.LoadedPatchedCopy, copy, versions);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DllNotFoundException
                                      or BadImageFormatException)
        {
            string why = inPlaceError is null ? "" : $"it cannot be rewritten ({inPlaceError.Message}) and ";
            throw new InvalidOperationException(
                $"TorchSharp's {library} needs {string.Join(", ", versions)} but this system's libstdc++ " +
                $"({libStdCxx ?? "not found"}) lacks it; {why}a patched copy could not be loaded ({e.Message}). " +
                "Install libstdc++ from GCC 13 or newer, or make that folder (or ~/.cache/quanto) writable; " +
                "TorchSharp will fail to load until then.", e);
        }
    }

    /// <summary>The file TorchSharp's NativeLibrary.TryLoad("LibTorchSharp", its assembly) opens first: the host's
    /// native search folders (from the application's deps.json), then TorchSharp's own folder.</summary>
    private static string? Locate()
    {
        var folders = new List<string>();
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string searched)
            folders.AddRange(searched.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        string torchSharp = typeof(TorchSharp.torch).Assembly.Location;
        if (torchSharp.Length > 0) folders.Add(Path.GetDirectoryName(torchSharp)!);
        return folders.Select(f => Path.Combine(f, FileName)).FirstOrDefault(File.Exists);
    }

    /// <summary>The path of a library this process has mapped whose file name is <paramref name="name"/>.</summary>
    private static string? LoadedPath(string name)
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/maps"))
            {
                int slash = line.IndexOf('/', StringComparison.Ordinal);
                if (slash >= 0 && line.EndsWith("/" + name, StringComparison.Ordinal)) return line[slash..];
            }
        }
        catch (IOException)
        {
        }
        return null;
    }

    /// <summary>Whether the file lies in a NuGet package folder (the global cache, a fallback folder): an ancestor
    /// holds the .nupkg.metadata NuGet writes on extraction. Those files are shared by every project.</summary>
    private static bool InPackageFolder(string path)
    {
        for (DirectoryInfo? dir = new FileInfo(path).Directory; dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, ".nupkg.metadata"))) return true;
        }
        return false;
    }

    /// <summary>
    /// Writes the patched bytes under ~/.cache/quanto/torchsharp-native/&lt;source folder, content&gt;/ beside symbolic
    /// links to the source folder's other libraries (its $ORIGIN RUNPATH then finds libtorch there, the same files
    /// TorchSharp loads later), loads it, and points TorchSharp's P/Invokes at it. TorchSharp's own load by name then
    /// finds the library already loaded under its soname.
    /// </summary>
    private static string LoadPatchedCopy(string library, byte[] patched)
    {
        string source = Path.GetDirectoryName(library)!;
        string key = Hex(XxHash64.Hash(Encoding.UTF8.GetBytes(source))) + "-" + Hex(XxHash64.Hash(patched));
        string cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        string folder = Directory.CreateDirectory(Path.Combine(cache, "quanto", "torchsharp-native", key)).FullName;
        foreach (string dependency in Directory.EnumerateFiles(source, "*.so*"))
        {
            string link = Path.Combine(folder, Path.GetFileName(dependency));
            if (Path.GetFileName(dependency) == FileName || File.Exists(link)) continue;
            try
            {
                File.CreateSymbolicLink(link, dependency);
            }
            catch (IOException) when (File.Exists(link))
            {
                // Another process made it first.
            }
        }
        string copy = Path.Combine(folder, FileName);
        if (!File.Exists(copy) || !File.ReadAllBytes(copy).AsSpan().SequenceEqual(patched))
        {
            string temp = copy + "." + Guid.NewGuid().ToString("N") + ".quanto-tmp";
            File.WriteAllBytes(temp, patched);
            File.Move(temp, copy, overwrite: true);
        }
        _copyHandle = NativeLibrary.Load(copy);
        Assembly torchSharp = typeof(TorchSharp.torch).Assembly;
        try
        {
            NativeLibrary.SetDllImportResolver(torchSharp, (name, _, _) => name == "LibTorchSharp" ? _copyHandle : 0);
        }
        catch (InvalidOperationException)
        {
            // TorchSharp or the application set its own resolver: the soname match still serves its loads.
        }
        return copy;
    }

    private static string Hex(byte[] bytes) => Convert.ToHexStringLower(bytes);
}
