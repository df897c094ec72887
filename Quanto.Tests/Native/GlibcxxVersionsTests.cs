using System.Diagnostics;
using System.Text;
using NUnit.Framework;
using Quanto.Native;

namespace Quanto.Tests.Native;

/// <summary>
/// The ELF version-need editing behind the Debian 12 loader fix, checked against binutils' readelf on the real
/// libraries and against hand-made ELF bytes whose layout the test writes itself.
/// </summary>
[TestFixture]
public sealed class GlibcxxVersionsTests
{
    [Test]
    public void NeedsOfTorchSharpsLibraryMatchReadelf()
    {
        string library = NuGetLibTorchSharp();
        byte[] elf = File.ReadAllBytes(library);
        var ours = GlibcxxVersions.Needs(elf, library).Select(n => (n.Name, n.IsWeak)).ToList();
        Assert.That(ours, Is.EqualTo(ReadelfNeeds(library)));
        Assert.That(ours.Select(n => n.Name), Does.Contain("GLIBCXX_3.4.32"), "the need the fix is about");
    }

    [Test]
    public void DefinitionsOfTheSystemLibStdCxxMatchReadelf()
    {
        string? libStdCxx = GlibcxxVersions.SystemLibStdCxx.FirstOrDefault(File.Exists);
        if (libStdCxx is null) Assert.Ignore("no system libstdc++ at the usual paths");
        HashSet<string> ours = GlibcxxVersions.Definitions(File.ReadAllBytes(libStdCxx), libStdCxx);
        string listing = Readelf(libStdCxx);
        string section = listing[listing.IndexOf(".gnu.version_d", StringComparison.Ordinal)..];
        int end = section.IndexOf(".gnu.version_r", StringComparison.Ordinal);
        var expected = section[..(end < 0 ? section.Length : end)].Split('\n')
            .Where(l => l.Contains("Flags: none", StringComparison.Ordinal))
            .Select(l => l[(l.IndexOf("Name: ", StringComparison.Ordinal) + 6)..].Trim()).ToHashSet();
        Assert.That(ours, Is.EquivalentTo(expected));
        Assert.That(ours, Does.Contain("GLIBCXX_3.4"));
    }

    [Test]
    public void WeakeningACopyFlagsExactlyTheUnmetNeedsAndChangesNothingElse()
    {
        string library = NuGetLibTorchSharp();
        string copy = Path.Combine(Path.GetTempPath(), "quanto-elf-" + Guid.NewGuid().ToString("N") + ".so");
        File.Copy(library, copy);
        try
        {
            // As if the system provided nothing past GLIBCXX_3.4.29: two needs (3.4.30, 3.4.32) become weak.
            var provided = Enumerable.Range(0, 30).Select(i => i == 0 ? "GLIBCXX_3.4" : $"GLIBCXX_3.4.{i}")
                .ToHashSet();
            List<string> weakened = GlibcxxVersions.WeakenFile(copy, provided);
            Assert.That(weakened, Is.EquivalentTo(new[] { "GLIBCXX_3.4.30", "GLIBCXX_3.4.32" }));

            var expected = ReadelfNeeds(library)
                .Select(n => (n.Name, n.Weak || weakened.Contains(n.Name))).ToList();
            Assert.That(ReadelfNeeds(copy), Is.EqualTo(expected));
            byte[] before = File.ReadAllBytes(library), after = File.ReadAllBytes(copy);
            int[] changed = Enumerable.Range(0, before.Length).Where(i => before[i] != after[i]).ToArray();
            Assert.That(changed, Has.Length.EqualTo(2), "one flags byte per weakened need");
            Assert.That(GlibcxxVersions.WeakenFile(copy, provided), Is.Empty, "a second pass changes nothing");
        }
        finally
        {
            File.Delete(copy);
        }
    }

    [Test]
    public void HandMadeElfNeedsAreReadAndOnlyUnmetGlibcxxOnesWeakened()
    {
        (byte[] elf, int[] flagOffsets) = HandMadeElf();
        List<ElfVersionNeed> needs = GlibcxxVersions.Needs(elf, "hand.so");
        Assert.That(needs.Select(n => (n.File, n.Name, n.IsWeak)), Is.EqualTo(new[]
        {
            ("libstdc++.so.6", "GLIBCXX_3.4.30", false), ("libstdc++.so.6", "GLIBCXX_3.4.32", false),
            ("libstdc++.so.6", "GLIBCXX_3.4.33", true), ("libc.so.6", "GLIBC_2.99", false),
        }));
        Assert.That(needs.Select(n => n.FlagsOffset), Is.EqualTo(flagOffsets));

        // A GLIBC need is never touched, nor one already weak; without a known libstdc++, only > 3.4.30.
        List<ElfVersionNeed> unmet = GlibcxxVersions.Unmet(needs, provided: null);
        Assert.That(unmet.Select(n => n.Name), Is.EqualTo(new[] { "GLIBCXX_3.4.32" }));
        Assert.That(GlibcxxVersions.Unmet(needs, ["GLIBCXX_3.4.32"]).Select(n => n.Name),
            Is.EqualTo(new[] { "GLIBCXX_3.4.30" }));

        byte[] patched = (byte[])elf.Clone();
        GlibcxxVersions.Weaken(patched, unmet);
        Assert.That(BitConverter.ToUInt16(patched, flagOffsets[1]), Is.EqualTo(2), "VER_FLG_WEAK");
        patched[flagOffsets[1]] = elf[flagOffsets[1]];
        Assert.That(patched, Is.EqualTo(elf), "no other byte changed");
    }

    [Test]
    public void BadFilesAreRefusedNamingTheFile()
    {
        (byte[] elf, _) = HandMadeElf();
        Assert.That(() => GlibcxxVersions.Needs(Encoding.ASCII.GetBytes(new string('x', 80)), "text.so"),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("text.so").And.Message.Contains("not an ELF"));
        byte[] big = (byte[])elf.Clone();
        big[5] = 2; // big-endian
        Assert.That(() => GlibcxxVersions.Needs(big, "big.so"),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("64-bit little-endian"));
        Assert.That(() => GlibcxxVersions.Needs(elf[..^40], "cut.so"),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("cut.so").And.Message.Contains("outside"));
    }

    /// <summary>
    /// An ELF64 header, then .dynstr and .gnu.version_r, then three section headers (null, .dynstr,
    /// .gnu.version_r), laid out here by the ELF specification's field offsets. Returns the bytes and the offset of
    /// each vna_flags field in file order.
    /// </summary>
    private static (byte[] Elf, int[] FlagOffsets) HandMadeElf()
    {
        string[] strings = ["", "libstdc++.so.6", "GLIBCXX_3.4.30", "GLIBCXX_3.4.32", "GLIBCXX_3.4.33", "libc.so.6",
            "GLIBC_2.99"];
        var strtab = new List<byte>();
        var at = new Dictionary<string, int>();
        foreach (string s in strings)
        {
            at[s] = strtab.Count;
            strtab.AddRange(Encoding.ASCII.GetBytes(s));
            strtab.Add(0);
        }
        const int strOffset = 64;
        int needOffset = strOffset + strtab.Count;
        // Verneed (16 bytes) + its Vernaux entries (16 bytes each): libstdc++ with three, libc with one.
        var need = new List<byte>();
        var flagOffsets = new List<int>();
        void Verneed(string file, int count, bool last)
        {
            need.AddRange(U16(1));
            need.AddRange(U16(count));
            need.AddRange(U32(at[file]));
            need.AddRange(U32(16));
            need.AddRange(U32(last ? 0 : 16 + (16 * count)));
        }
        void Vernaux(string name, int flags, bool last)
        {
            need.AddRange(U32(0));
            flagOffsets.Add(needOffset + need.Count);
            need.AddRange(U16(flags));
            need.AddRange(U16(0));
            need.AddRange(U32(at[name]));
            need.AddRange(U32(last ? 0 : 16));
        }
        Verneed("libstdc++.so.6", 3, last: false);
        Vernaux("GLIBCXX_3.4.30", 0, last: false);
        Vernaux("GLIBCXX_3.4.32", 0, last: false);
        Vernaux("GLIBCXX_3.4.33", 2, last: true);
        Verneed("libc.so.6", 1, last: true);
        Vernaux("GLIBC_2.99", 0, last: true);

        int shoff = needOffset + need.Count;
        var elf = new byte[shoff + (3 * 64)];
        elf[0] = 0x7f;
        "ELF"u8.CopyTo(elf.AsSpan(1));
        elf[4] = 2; // ELFCLASS64
        elf[5] = 1; // little-endian
        BitConverter.GetBytes((ulong)shoff).CopyTo(elf, 0x28);
        BitConverter.GetBytes((ushort)64).CopyTo(elf, 0x3A);
        BitConverter.GetBytes((ushort)3).CopyTo(elf, 0x3C);
        strtab.CopyTo(elf, strOffset);
        need.CopyTo(elf, needOffset);
        Section(elf, shoff + 64, type: 3, offset: strOffset, size: strtab.Count, link: 0, info: 0);
        Section(elf, shoff + 128, type: 0x6ffffffe, offset: needOffset, size: need.Count, link: 1, info: 2);
        return (elf, flagOffsets.ToArray());
    }

    private static void Section(byte[] elf, int at, uint type, int offset, int size, int link, int info)
    {
        BitConverter.GetBytes(type).CopyTo(elf, at + 4);
        BitConverter.GetBytes((ulong)offset).CopyTo(elf, at + 24);
        BitConverter.GetBytes((ulong)size).CopyTo(elf, at + 32);
        BitConverter.GetBytes((uint)link).CopyTo(elf, at + 40);
        BitConverter.GetBytes((uint)info).CopyTo(elf, at + 44);
    }

    private static byte[] U16(int v) => BitConverter.GetBytes((ushort)v);

    private static byte[] U32(int v) => BitConverter.GetBytes((uint)v);

    /// <summary>TorchSharp's library as NuGet extracted it (read only: the cache is never written).</summary>
    internal static string NuGetLibTorchSharp()
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("Linux ELF libraries only");
        string root = NuGetPackages();
        string version = typeof(TorchSharp.torch).Assembly.GetName().Version!.ToString(3);
        string path = Path.Combine(root, "torchsharp", version, "runtimes", "linux-x64", "native",
            "libLibTorchSharp.so");
        if (!File.Exists(path)) Assert.Ignore($"{path} is not in the NuGet cache");
        return path;
    }

    /// <summary>The NuGet global packages folder.</summary>
    internal static string NuGetPackages() =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } packages
            ? packages
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>(name, weak) of each entry of readelf's "Version needs" listing.</summary>
    internal static List<(string Name, bool Weak)> ReadelfNeeds(string path)
    {
        string listing = Readelf(path);
        int start = listing.IndexOf(".gnu.version_r", StringComparison.Ordinal);
        Assert.That(start, Is.GreaterThanOrEqualTo(0), "readelf lists a version needs section");
        return listing[start..].Split('\n').Where(l => l.Contains("Name: ", StringComparison.Ordinal))
            .Select(l =>
            {
                string rest = l[(l.IndexOf("Name: ", StringComparison.Ordinal) + 6)..];
                return (rest[..rest.IndexOf(' ')], rest.Contains("Flags: WEAK", StringComparison.Ordinal));
            }).ToList();
    }

    private static string Readelf(string path)
    {
        if (!File.Exists("/usr/bin/readelf")) Assert.Ignore("binutils' readelf is not installed");
        var start = new ProcessStartInfo("/usr/bin/readelf", ["-V", "--wide", path])
        {
            RedirectStandardOutput = true,
            Environment = { ["LC_ALL"] = "C" },
        };
        using Process process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.That(process.ExitCode, Is.Zero, output);
        return output;
    }
}
