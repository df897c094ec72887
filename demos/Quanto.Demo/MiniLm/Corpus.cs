using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Quanto.Demo.MiniLm;

/// <summary>
/// Real English sentences that every machine of this kind has, chosen deterministically: half from the short
/// descriptions of the apt packages the machine knows (`apt-cache dumpavail`, after `apt-get update`), half from the
/// licence texts of Debian's base-files (/usr/share/common-licenses). Without apt data the licence texts alone serve,
/// and <see cref="Source"/> says so. The calibration sentences (for static activation ranges) are disjoint from the
/// evaluation ones.
/// </summary>
internal sealed partial record Corpus(string Source, IReadOnlyList<string> Sentences, IReadOnlyList<string> Calibration)
{
    /// <summary>Evaluation sentences the demo uses.</summary>
    public const int DefaultSize = 512;

    /// <summary>Calibration sentences the demo uses.</summary>
    public const int DefaultCalibration = 64;

    /// <summary>The fewest evaluation sentences the demo accepts (the issue's floor).</summary>
    public const int Minimum = 400;

    /// <summary>Debian's common licence texts (package base-files).</summary>
    public const string LicenceFolder = "/usr/share/common-licenses";

    /// <summary>Builds the corpus from this machine's apt data and licence texts.</summary>
    /// <exception cref="InvalidOperationException">Fewer than <see cref="Minimum"/> sentences are available.
    /// </exception>
    public static Corpus Load(int size = DefaultSize, int calibration = DefaultCalibration) =>
        Build(AptDescriptions(), LicenceSentences(LicenceFolder), size, calibration);

    /// <summary>The corpus from given candidate lists (each already deduplicated, in a fixed order).</summary>
    public static Corpus Build(IReadOnlyList<string> apt, IReadOnlyList<string> licences, int size, int calibration)
    {
        // Apt data counts only when it could fill its half; a partial package list would make the corpus depend on
        // how far `apt-get update` got.
        int half = size / 2;
        bool withApt = apt.Count >= half + (calibration / 2);
        int fromLicences = withApt ? size - half : size;
        int licenceCalibration = withApt ? calibration - (calibration / 2) : calibration;
        if (licences.Count < fromLicences + licenceCalibration)
        {
            throw new InvalidOperationException(
                $"the MiniLM corpus needs {fromLicences + licenceCalibration} licence sentences from " +
                $"{LicenceFolder} (package base-files) but found {licences.Count}" +
                (withApt ? "" : "; run `apt-get update` so that `apt-cache dumpavail` lists package descriptions"));
        }
        (List<string> sentences, List<string> held) = Spread(licences, fromLicences, licenceCalibration);
        string source = $"{fromLicences} sentences of {LicenceFolder}";
        if (withApt)
        {
            (List<string> descriptions, List<string> aptHeld) = Spread(apt, half, calibration / 2);
            sentences.AddRange(descriptions);
            held.AddRange(aptHeld);
            source = $"{half} apt package descriptions (of {apt.Count}) + {source}";
        }
        else
        {
            source += " (no apt package data: run `apt-get update` for the mixed corpus)";
        }
        if (sentences.Count < Math.Min(size, Minimum))
            throw new InvalidOperationException($"the MiniLM corpus has {sentences.Count} sentences; needs {Minimum}");
        return new Corpus(source, sentences, held);
    }

    /// <summary>The distinct short descriptions of every package apt knows, sorted ordinally; empty when apt or its
    /// lists are missing.</summary>
    public static IReadOnlyList<string> AptDescriptions()
    {
        string text;
        try
        {
            using var apt = Process.Start(new ProcessStartInfo("apt-cache", "dumpavail")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            });
            if (apt is null) return [];
            _ = apt.StandardError.ReadToEndAsync(); // drained so apt never blocks on a full pipe
            text = apt.StandardOutput.ReadToEnd();
            apt.WaitForExit();
            if (apt.ExitCode != 0) return [];
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return []; // no apt on this machine
        }
        return AptDescriptions(text);
    }

    /// <summary>The distinct short descriptions in `apt-cache dumpavail` output that read as English text (at least
    /// four words), sorted ordinally.</summary>
    public static IReadOnlyList<string> AptDescriptions(string dumpavail) =>
        dumpavail.Split('\n')
            .Where(line => line.StartsWith("Description: ", StringComparison.Ordinal))
            .Select(line => line["Description: ".Length..].Trim())
            .Where(d => WordCount(d) >= 4 && d.All(c => c < 128))
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)
            .ToList();

    /// <summary>The distinct sentences (6 to 60 words) of every licence text in <paramref name="folder"/>, files in
    /// ordinal name order, sentences in text order.</summary>
    public static IReadOnlyList<string> LicenceSentences(string folder)
    {
        if (!Directory.Exists(folder)) return [];
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var sentences = new List<string>();
        foreach (string file in Directory.GetFiles(folder).Order(StringComparer.Ordinal))
        {
            string text = Whitespace().Replace(File.ReadAllText(file), " ");
            foreach (string sentence in SentenceEnd().Split(text).Select(s => s.Trim()))
            {
                int words = WordCount(sentence);
                if (words is >= 6 and <= 60 && seen.Add(sentence)) sentences.Add(sentence);
            }
        }
        return sentences;
    }

    /// <summary><paramref name="count"/> items evenly spread over the list, and <paramref name="held"/> others
    /// between them (never the same items).</summary>
    private static (List<string> Chosen, List<string> Held) Spread(IReadOnlyList<string> items, int count, int held)
    {
        double stride = (double)items.Count / (count + held);
        var all = Enumerable.Range(0, count + held).Select(i => items[(int)(i * stride)]).ToList();
        // Every k-th pick is held out, so both sets cover the whole list.
        int every = held == 0 ? int.MaxValue : Math.Max(2, (count + held) / held);
        var chosen = new List<string>();
        var heldOut = new List<string>();
        for (int i = 0; i < all.Count; i++)
        {
            if (heldOut.Count < held && i % every == every - 1) heldOut.Add(all[i]);
            else chosen.Add(all[i]);
        }
        // Rounding can leave the held set short at the end of the list: move the last chosen ones over.
        while (heldOut.Count < held)
        {
            heldOut.Add(chosen[^1]);
            chosen.RemoveAt(chosen.Count - 1);
        }
        return (chosen.Take(count).ToList(), heldOut);
    }

    private static int WordCount(string text) => text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    // A sentence (or clause) ends at . ! ? ; : before a capital, a quote or an opening parenthesis.
    [GeneratedRegex(@"(?<=[.!?;:])\s+(?=[A-Z""(])")]
    private static partial Regex SentenceEnd();
}
