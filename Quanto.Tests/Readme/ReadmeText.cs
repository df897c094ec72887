using System.Runtime.CompilerServices;

namespace Quanto.Tests.Readme;

/// <summary>Reads the repository README and the test sources its examples are copied from, so a test can check
/// that a README example is, line for line, code that compiles and runs here.</summary>
internal static class ReadmeText
{
    /// <summary>True when one code block of the README holds <paramref name="code"/> as consecutive lines.</summary>
    public static bool Shows(IReadOnlyList<string> code)
    {
        string[] lines = File.ReadAllLines(Path.Combine(Root(), "README.md"));
        for (int i = Array.IndexOf(lines, code[0]); i >= 0; i = Array.IndexOf(lines, code[0], i + 1))
        {
            if (lines.Skip(i).TakeWhile(l => l != "```").Take(code.Count).SequenceEqual(code)) return true;
        }
        return false;
    }

    /// <summary>The lines of <paramref name="file"/> (under Quanto.Tests) between <c>// --- README: name ---</c>
    /// and <c>// --- end ---</c>, with the region's common indentation removed.</summary>
    public static IReadOnlyList<string> Region(string file, string name)
    {
        string[] lines = File.ReadAllLines(Path.Combine(Root(), "Quanto.Tests", file));
        int start = Array.FindIndex(lines, l => l.Trim() == $"// --- README: {name} ---");
        if (start < 0) throw new InvalidOperationException($"{file} has no README region '{name}'.");
        List<string> region = lines.Skip(start + 1).TakeWhile(l => l.Trim() != "// --- end ---").ToList();
        int indent = region.Where(l => l.Trim().Length > 0).Min(l => l.Length - l.TrimStart().Length);
        return region.Select(l => l.Length >= indent ? l[indent..] : l.TrimStart()).ToList();
    }

    private static string Root([CallerFilePath] string path = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, "..", ".."));
}
