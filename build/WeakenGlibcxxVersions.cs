// The Debian 12 loader fix for TorchSharp's libLibTorchSharp.so, in one source with two users: the MSBuild inline task
// of TorchSharpNativeFix.targets (after Build/Publish, for this repository's projects and the package's consumers) and
// Quanto.Runtime (compiled with QUANTO_RUNTIME; its module initializer applies it at run time for a ProjectReference,
// which MSBuild targets do not follow). The inline task compiles against netstandard2.0: byte arrays and BitConverter.
#nullable enable
#if !QUANTO_RUNTIME
using System;
using System.Collections.Generic;
using System.IO;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
#endif
using System.Text;

namespace Quanto.Native;

/// <summary>One version a shared library needs from another (an entry of its .gnu.version_r section).</summary>
internal sealed class ElfVersionNeed(string file, string name, ushort flags, int flagsOffset)
{
    /// <summary>The library the version comes from (libstdc++.so.6).</summary>
    public string File { get; } = file;

    /// <summary>The version (GLIBCXX_3.4.32).</summary>
    public string Name { get; } = name;

    /// <summary>vna_flags; <see cref="GlibcxxVersions.VerFlgWeak"/> makes an unmet need acceptable to the loader.
    /// </summary>
    public ushort Flags { get; } = flags;

    /// <summary>Byte offset of vna_flags in the file.</summary>
    public int FlagsOffset { get; } = flagsOffset;

    public bool IsWeak => (Flags & GlibcxxVersions.VerFlgWeak) != 0;
}

/// <summary>
/// TorchSharp 0.107.0's libLibTorchSharp.so asks for GLIBCXX_3.4.32 (GCC 13) for one symbol it never calls
/// (std::ios_base_library_init); older libstdc++ (Debian 12: 3.4.30) makes the loader refuse the whole library. Marking
/// each GLIBCXX need the system lacks as WEAK (VER_FLG_WEAK in .gnu.version_r) lets the loader accept it; the unused
/// symbol is never bound. Reads ELF64 little-endian files only (every platform TorchSharp ships for Linux).
/// </summary>
internal static class GlibcxxVersions
{
    public const ushort VerFlgWeak = 0x2;
    private const uint ShtGnuVerdef = 0x6ffffffd;
    private const uint ShtGnuVerneed = 0x6ffffffe;

    /// <summary>Where distributions install the system libstdc++ (the build-time guess of what the loader uses).
    /// </summary>
    public static readonly string[] SystemLibStdCxx =
    {
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
        "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
    };

    /// <summary>The GLIBCXX_x.y.z versions the first existing <paramref name="candidates"/> file defines (its
    /// .gnu.version_d), or null when none exists.</summary>
    /// <exception cref="InvalidDataException">The file is not an ELF64 little-endian library.</exception>
    public static HashSet<string>? ReadProvided(IEnumerable<string> candidates)
    {
        foreach (string candidate in candidates)
        {
            if (System.IO.File.Exists(candidate)) return Definitions(System.IO.File.ReadAllBytes(candidate), candidate);
        }
        return null;
    }

    /// <summary>The version definitions of a library (.gnu.version_d), the BASE entry (its soname) excluded.</summary>
    /// <exception cref="InvalidDataException">Not an ELF64 little-endian file, or a section lies outside it.
    /// </exception>
    public static HashSet<string> Definitions(byte[] elf, string path)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach ((long offset, int count, long strtab) in Sections(elf, path, ShtGnuVerdef))
        {
            long def = offset;
            for (int d = 0; d < count; d++)
            {
                ushort flags = U16(elf, def + 2, path);
                long aux = def + U32(elf, def + 12, path);
                // VER_FLG_BASE (0x1) marks the entry naming the library itself.
                if ((flags & 0x1) == 0) names.Add(CString(elf, strtab + U32(elf, aux, path), path));
                long next = U32(elf, def + 16, path);
                if (next == 0) break;
                def += next;
            }
        }
        return names;
    }

    /// <summary>Every version need of a library (.gnu.version_r), in file order.</summary>
    /// <exception cref="InvalidDataException">Not an ELF64 little-endian file, or a section lies outside it.
    /// </exception>
    public static List<ElfVersionNeed> Needs(byte[] elf, string path)
    {
        var needs = new List<ElfVersionNeed>();
        foreach ((long offset, int count, long strtab) in Sections(elf, path, ShtGnuVerneed))
        {
            long need = offset;
            for (int n = 0; n < count; n++)
            {
                string file = CString(elf, strtab + U32(elf, need + 4, path), path);
                int auxCount = U16(elf, need + 2, path);
                long aux = need + U32(elf, need + 8, path);
                for (int a = 0; a < auxCount; a++)
                {
                    string name = CString(elf, strtab + U32(elf, aux + 8, path), path);
                    needs.Add(new ElfVersionNeed(file, name, U16(elf, aux + 4, path), checked((int)(aux + 4))));
                    long nextAux = U32(elf, aux + 12, path);
                    if (nextAux == 0) break;
                    aux += nextAux;
                }
                long next = U32(elf, need + 12, path);
                if (next == 0) break;
                need += next;
            }
        }
        return needs;
    }

    /// <summary>The GLIBCXX needs that are not weak and that <paramref name="provided"/> lacks: what stops the loader.
    /// Without a known libstdc++ (null), everything newer than Debian 12's GLIBCXX_3.4.30.</summary>
    public static List<ElfVersionNeed> Unmet(IEnumerable<ElfVersionNeed> needs, HashSet<string>? provided)
    {
        var unmet = new List<ElfVersionNeed>();
        foreach (ElfVersionNeed need in needs)
        {
            if (!need.IsWeak && need.Name.StartsWith("GLIBCXX_", StringComparison.Ordinal) &&
                (provided is null ? NewerThanDebian12(need.Name) : !provided.Contains(need.Name)))
            {
                unmet.Add(need);
            }
        }
        return unmet;
    }

    /// <summary>Sets VER_FLG_WEAK on each of <paramref name="needs"/> in <paramref name="elf"/>.</summary>
    public static void Weaken(byte[] elf, IEnumerable<ElfVersionNeed> needs)
    {
        foreach (ElfVersionNeed need in needs)
        {
            int flags = need.Flags | VerFlgWeak;
            elf[need.FlagsOffset] = (byte)flags;
            elf[need.FlagsOffset + 1] = (byte)(flags >> 8);
        }
    }

    /// <summary>Weakens the unmet needs of the library at <paramref name="path"/> in place, through a temporary file
    /// renamed over it: a hard link into the NuGet cache keeps its bytes, and a process loading the library meanwhile
    /// sees either the old or the new file, never a half-written one.</summary>
    /// <returns>The versions weakened (empty: the file was left alone).</returns>
    /// <exception cref="InvalidDataException">Not an ELF64 little-endian file.</exception>
    /// <exception cref="IOException">The file or its folder cannot be written.</exception>
    public static List<string> WeakenFile(string path, HashSet<string>? provided)
    {
        byte[] elf = System.IO.File.ReadAllBytes(path);
        List<ElfVersionNeed> unmet = Unmet(Needs(elf, path), provided);
        var names = new List<string>();
        foreach (ElfVersionNeed need in unmet) names.Add(need.Name);
        if (unmet.Count == 0) return names;
        Weaken(elf, unmet);
        WriteReplacing(path, elf);
        return names;
    }

    /// <summary>Writes <paramref name="bytes"/> beside <paramref name="path"/> and renames the copy over it.</summary>
    public static void WriteReplacing(string path, byte[] bytes)
    {
        string temp = path + "." + Guid.NewGuid().ToString("N") + ".quanto-tmp";
        try
        {
            System.IO.File.WriteAllBytes(temp, bytes);
            System.IO.File.Replace(temp, path, null); // rename(2): only this directory entry changes
        }
        finally
        {
            if (System.IO.File.Exists(temp)) System.IO.File.Delete(temp);
        }
    }

    private static bool NewerThanDebian12(string name)
    {
        string[] parts = name.Substring("GLIBCXX_".Length).Split('.');
        return parts.Length == 3 && parts[0] == "3" && parts[1] == "4" && int.TryParse(parts[2], out int minor) &&
               minor > 30;
    }

    /// <summary>(offset, entry count, string table offset) of each section of the given type.</summary>
    private static List<(long Offset, int Count, long StringTable)> Sections(byte[] elf, string path, uint type)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException(path + " is not an ELF file");
        if (elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException(path + " is not a 64-bit little-endian ELF file");
        long shoff = (long)U64(elf, 0x28, path);
        int shentsize = U16(elf, 0x3A, path);
        int shnum = U16(elf, 0x3C, path);
        var found = new List<(long, int, long)>();
        for (int s = 0; s < shnum; s++)
        {
            long sh = shoff + ((long)s * shentsize);
            if (U32(elf, sh + 4, path) != type) continue;
            long link = U32(elf, sh + 40, path);
            long strtab = (long)U64(elf, shoff + (link * shentsize) + 24, path);
            // sh_info holds the entry count of both version sections.
            found.Add(((long)U64(elf, sh + 24, path), checked((int)U32(elf, sh + 44, path)), strtab));
        }
        return found;
    }

    private static ushort U16(byte[] elf, long at, string path) => BitConverter.ToUInt16(elf, Check(elf, at, 2, path));

    private static uint U32(byte[] elf, long at, string path) => BitConverter.ToUInt32(elf, Check(elf, at, 4, path));

    private static ulong U64(byte[] elf, long at, string path) => BitConverter.ToUInt64(elf, Check(elf, at, 8, path));

    private static int Check(byte[] elf, long at, int size, string path)
    {
        if (at < 0 || at + size > elf.Length)
            throw new InvalidDataException(path + ": an ELF structure at byte " + at + " lies outside the file");
        return (int)at;
    }

    private static string CString(byte[] elf, long at, string path)
    {
        int start = Check(elf, at, 1, path);
        int end = start;
        while (end < elf.Length && elf[end] != 0) end++;
        return Encoding.ASCII.GetString(elf, start, end - start);
    }
}

#if !QUANTO_RUNTIME
/// <summary>The inline MSBuild task of TorchSharpNativeFix.targets: weakens the copies in the output folder.</summary>
public sealed class QuantoWeakenGlibcxxVersions : Task
{
    [Required]
    public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();

    public override bool Execute()
    {
        HashSet<string>? provided;
        try
        {
            provided = GlibcxxVersions.ReadProvided(GlibcxxVersions.SystemLibStdCxx);
        }
        catch (InvalidDataException e)
        {
            Log.LogWarning("Quanto: " + e.Message + "; assuming Debian 12's libstdc++ (GLIBCXX_3.4.30)");
            provided = null;
        }
        foreach (ITaskItem item in Files)
        {
            string path = item.GetMetadata("FullPath");
            try
            {
                List<string> weakened = GlibcxxVersions.WeakenFile(path, provided);
                if (weakened.Count > 0)
                {
                    Log.LogMessage(MessageImportance.High,
                        "Quanto: marked " + string.Join(", ", weakened) + " weak in " + path +
                        " (system libstdc++ lacks them; TorchSharp never calls the symbol that needs them)");
                }
            }
            catch (Exception e) when (e is IOException || e is InvalidDataException || e is UnauthorizedAccessException)
            {
                Log.LogError("Quanto: could not patch " + path + " for this system's libstdc++: " + e.Message +
                             ". Install libstdc++ from GCC 13+ or run `patchelf --clear-symbol-version " +
                             "_ZSt21ios_base_library_initv " + path + "`.");
            }
        }
        return !Log.HasLoggedErrors;
    }
}
#endif
