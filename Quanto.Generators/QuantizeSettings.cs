using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Quanto.Generators;

/// <summary>The named arguments of one [Quantize] attribute; null where not written.</summary>
internal sealed class QuantizeSettings
{
    public const string AttributeName = "Quanto.QuantizeAttribute";
    public const string NoQuantizeName = "Quanto.NoQuantizeAttribute";

    public string? Weights { get; private set; }
    public string? Activations { get; private set; }
    public int? Group { get; private set; }
    public string[] Include { get; private set; } = [];
    public string[] Exclude { get; private set; } = [];

    /// <summary>Where each named argument is written, for diagnostics.</summary>
    public Dictionary<string, Location?> Locations { get; } = new();

    /// <summary>Reads an attribute application (the enum values arrive as numbers).</summary>
    public static QuantizeSettings Read(AttributeData attribute)
    {
        var settings = new QuantizeSettings();
        var syntax = attribute.ApplicationSyntaxReference?.GetSyntax() as AttributeSyntax;
        foreach (KeyValuePair<string, TypedConstant> argument in attribute.NamedArguments)
        {
            settings.Locations[argument.Key] = syntax?.ArgumentList?.Arguments
                .FirstOrDefault(a => a.NameEquals?.Name.Identifier.Text == argument.Key)?.GetLocation()
                ?? syntax?.GetLocation();
            TypedConstant value = argument.Value;
            switch (argument.Key)
            {
                case "Weights" when value.Value is int w:
                    settings.Weights = QTypeNames.Member(w);
                    break;
                case "Activations" when value.Value is int a:
                    settings.Activations = QTypeNames.Member(a);
                    break;
                case "Group" when value.Value is int g:
                    settings.Group = g;
                    break;
                case "Include" when !value.IsNull:
                    settings.Include = Strings(value);
                    break;
                case "Exclude" when !value.IsNull:
                    settings.Exclude = Strings(value);
                    break;
            }
        }
        return settings;
    }

    /// <summary>The [Quantize] attribute on a symbol, if any.</summary>
    public static AttributeData? Find(ISymbol symbol, string name = AttributeName) =>
        symbol.GetAttributes().FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == name);

    /// <summary>True when this field or class should be left float by the class's Include/Exclude patterns.</summary>
    public bool Excludes(string name) =>
        (Include.Length > 0 && !Include.Any(p => Fnmatch(name, p))) || Exclude.Any(p => Fnmatch(name, p));

    private static string[] Strings(TypedConstant array) =>
        array.Values.Select(v => v.Value as string).Where(s => s is not null).Select(s => s!).ToArray();

    /// <summary>fnmatch with '*' and '?', as Quantizer's include/exclude patterns.</summary>
    private static bool Fnmatch(string text, string pattern)
    {
        int t = 0, p = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || pattern[p] == text[t]))
            {
                t++;
                p++;
            }
            else if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                mark = t;
            }
            else if (star >= 0)
            {
                p = star + 1;
                t = ++mark;
            }
            else
            {
                return false;
            }
        }
        while (p < pattern.Length && pattern[p] == '*') p++;
        return p == pattern.Length;
    }
}
