using System.Text;

namespace Quanto.TinyLlama;

/// <summary>
/// Real English text that every Debian machine has: the common licence texts of base-files
/// (/usr/share/common-licenses) and the long descriptions of the installed packages (/var/lib/dpkg/status). Split
/// into paragraphs in a fixed order; every tenth paragraph is held out for perplexity.
/// </summary>
internal sealed record Corpus(IReadOnlyList<string> Train, IReadOnlyList<string> HeldOut, string Sources)
{
    internal const string LicenceFolder = "/usr/share/common-licenses";
    internal const string DpkgStatus = "/var/lib/dpkg/status";

    /// <summary>Reads the corpus.</summary>
    /// <exception cref="InvalidOperationException">Neither source exists on this machine.</exception>
    internal static Corpus Load()
    {
        var paragraphs = new List<string>();
        var sources = new List<string>();
        if (Directory.Exists(LicenceFolder))
        {
            // Symbolic links (GPL -> GPL-3) would repeat a licence.
            string[] files = Directory.GetFiles(LicenceFolder).Where(f => new FileInfo(f).LinkTarget is null)
                .Order(StringComparer.Ordinal).ToArray();
            foreach (string file in files) paragraphs.AddRange(Paragraphs(File.ReadAllText(file)));
            sources.Add($"{files.Length} licence texts in {LicenceFolder}");
        }
        if (File.Exists(DpkgStatus))
        {
            List<string> descriptions = PackageDescriptions(File.ReadAllLines(DpkgStatus));
            paragraphs.AddRange(descriptions);
            sources.Add($"{descriptions.Count} package-description paragraphs in {DpkgStatus}");
        }
        if (paragraphs.Count < 20)
        {
            throw new InvalidOperationException(
                $"Too little text: neither {LicenceFolder} nor {DpkgStatus} is usable.");
        }
        var train = new List<string>();
        var heldOut = new List<string>();
        for (int i = 0; i < paragraphs.Count; i++) (i % 10 == 9 ? heldOut : train).Add(paragraphs[i]);
        return new Corpus(train, heldOut, string.Join(" and ", sources));
    }

    /// <summary>Blank-line separated paragraphs, whitespace collapsed, short fragments dropped.</summary>
    internal static IEnumerable<string> Paragraphs(string text) =>
        text.Replace("\r", "").Split("\n\n")
            .Select(p => string.Join(' ', p.Split((char[])[' ', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries)))
            .Where(p => p.Length >= 40);

    /// <summary>The Description fields of a dpkg status file: the synopsis, then each extended paragraph
    /// (continuation lines start with a space; " ." is a blank line).</summary>
    internal static List<string> PackageDescriptions(IEnumerable<string> lines)
    {
        var paragraphs = new List<string>();
        var current = new StringBuilder();
        bool inside = false;
        void Flush()
        {
            if (current.Length >= 40) paragraphs.Add(current.ToString());
            current.Clear();
        }
        foreach (string line in lines)
        {
            if (line.StartsWith("Description: ", StringComparison.Ordinal))
            {
                Flush();
                inside = true;
                current.Append(line["Description: ".Length..].Trim()).Append('.');
                Flush();
            }
            else if (inside && line.StartsWith(' '))
            {
                string content = line.Trim();
                if (content == ".") Flush();
                else current.Append(current.Length > 0 ? " " : "").Append(content);
            }
            else
            {
                Flush();
                inside = false;
            }
        }
        Flush();
        return paragraphs;
    }
}
