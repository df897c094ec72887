using System.Text;
using System.Text.RegularExpressions;

namespace Quanto.Nn;

/// <summary>Python's fnmatch.fnmatchcase semantics for module paths: <c>*</c> any run of characters (dots
/// included), <c>?</c> one character, <c>[seq]</c> / <c>[!seq]</c> character sets; everything else literal.</summary>
public static class Fnmatch
{
    /// <summary>True when <paramref name="name"/> matches <paramref name="pattern"/> as a whole.</summary>
    public static bool IsMatch(string name, string pattern) =>
        new Regex(ToRegex(pattern), RegexOptions.CultureInvariant | RegexOptions.Singleline).IsMatch(name);

    /// <summary>The anchored regular expression equivalent to <paramref name="pattern"/>.</summary>
    public static string ToRegex(string pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        var regex = new StringBuilder("^");
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            switch (c)
            {
                case '*':
                    regex.Append(".*");
                    break;
                case '?':
                    regex.Append('.');
                    break;
                case '[':
                    int j = i + 1;
                    if (j < pattern.Length && pattern[j] == '!') j++;
                    if (j < pattern.Length && pattern[j] == ']') j++;
                    while (j < pattern.Length && pattern[j] != ']') j++;
                    if (j >= pattern.Length)
                    {
                        regex.Append(@"\[");
                        break;
                    }
                    string set = pattern[(i + 1)..j].Replace(@"\", @"\\");
                    regex.Append('[').Append(set.StartsWith('!') ? "^" + set[1..] : set.StartsWith('^') ? @"\" + set : set)
                        .Append(']');
                    i = j;
                    break;
                default:
                    regex.Append(Regex.Escape(c.ToString()));
                    break;
            }
        }
        return regex.Append('$').ToString();
    }
}
