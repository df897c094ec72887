// Inline MSBuild task (see TorchSharpNativeFix.targets): marks GLIBCXX version needs that the system libstdc++ lacks
// as WEAK in an ELF64 little-endian shared library, so the dynamic loader accepts it. Rewrites through a temporary
// file so a hard link into the NuGet cache is never modified.
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public sealed class QuantoWeakenGlibcxxVersions : Task
{
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlgWeak = 0x2;

    [Required]
    public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();

    public override bool Execute()
    {
        HashSet<string>? provided = ReadSystemGlibcxxVersions();
        foreach (ITaskItem item in Files)
        {
            string path = item.GetMetadata("FullPath");
            try
            {
                List<string> weakened = Patch(path, provided);
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

    /// <summary>GLIBCXX_x.y.z names the system libstdc++ defines, or null when none was found.</summary>
    private static HashSet<string>? ReadSystemGlibcxxVersions()
    {
        string[] candidates =
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        };
        foreach (string candidate in candidates)
        {
            if (!File.Exists(candidate)) continue;
            string text = Encoding.ASCII.GetString(File.ReadAllBytes(candidate));
            var versions = new HashSet<string>(StringComparer.Ordinal);
            int at = 0;
            while ((at = text.IndexOf("GLIBCXX_", at, StringComparison.Ordinal)) >= 0)
            {
                int end = at + 8;
                while (end < text.Length && (char.IsDigit(text[end]) || text[end] == '.')) end++;
                versions.Add(text.Substring(at, end - at));
                at = end;
            }
            return versions;
        }
        return null;
    }

    private static List<string> Patch(string path, HashSet<string>? provided)
    {
        byte[] elf = File.ReadAllBytes(path);
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException("not a 64-bit little-endian ELF file");

        long shoff = (long)BitConverter.ToUInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        var weakened = new List<string>();
        for (int s = 0; s < shnum; s++)
        {
            long sh = shoff + (long)s * shentsize;
            if (sh + 64 > elf.Length) throw new InvalidDataException("section header out of range");
            if (BitConverter.ToUInt32(elf, (int)sh + 4) != ShtGnuVerneed) continue;
            long offset = (long)BitConverter.ToUInt64(elf, (int)sh + 24);
            int link = (int)BitConverter.ToUInt32(elf, (int)sh + 40);
            int count = (int)BitConverter.ToUInt32(elf, (int)sh + 44);
            long strtab = (long)BitConverter.ToUInt64(elf, (int)(shoff + (long)link * shentsize) + 24);

            long need = offset;
            for (int n = 0; n < count; n++)
            {
                int auxCount = BitConverter.ToUInt16(elf, (int)need + 2);
                long aux = need + BitConverter.ToUInt32(elf, (int)need + 8);
                for (int a = 0; a < auxCount; a++)
                {
                    string name = ReadCString(elf, strtab + BitConverter.ToUInt32(elf, (int)aux + 8));
                    ushort flags = BitConverter.ToUInt16(elf, (int)aux + 4);
                    if (IsMissing(name, provided) && (flags & VerFlgWeak) == 0)
                    {
                        flags |= VerFlgWeak;
                        elf[aux + 4] = (byte)flags;
                        elf[aux + 5] = (byte)(flags >> 8);
                        weakened.Add(name);
                    }
                    aux += BitConverter.ToUInt32(elf, (int)aux + 12);
                }
                need += BitConverter.ToUInt32(elf, (int)need + 12);
            }
        }

        if (weakened.Count > 0)
        {
            string temp = path + ".quanto-tmp";
            File.WriteAllBytes(temp, elf);
            File.Delete(path); // unlinks only this name: a hard-linked cache file keeps its bytes
            File.Move(temp, path);
        }
        return weakened;
    }

    // Without a readable system libstdc++, weaken everything newer than Debian 12's GLIBCXX_3.4.30.
    private static bool IsMissing(string name, HashSet<string>? provided)
    {
        if (!name.StartsWith("GLIBCXX_", StringComparison.Ordinal)) return false;
        if (provided != null) return !provided.Contains(name);
        string[] parts = name.Substring(8).Split('.');
        return parts.Length == 3 && parts[0] == "3" && parts[1] == "4" && int.TryParse(parts[2], out int minor) && minor > 30;
    }

    private static string ReadCString(byte[] data, long offset)
    {
        long end = offset;
        while (end < data.Length && data[end] != 0) end++;
        return Encoding.ASCII.GetString(data, (int)offset, (int)(end - offset));
    }
}
