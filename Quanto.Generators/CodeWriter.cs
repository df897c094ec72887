using System.Text;

namespace Quanto.Generators;

/// <summary>A minimal indented text writer (four spaces, LF line ends) for generated sources.</summary>
internal sealed class CodeWriter
{
    private readonly StringBuilder _text = new();
    private int _depth;

    /// <summary>Writes one line at the current indentation; an empty line stays empty.</summary>
    public CodeWriter Line(string line = "")
    {
        if (line.Length > 0) _text.Append(' ', _depth * 4).Append(line);
        _text.Append('\n');
        return this;
    }

    /// <summary>Writes each line of a multi-line text at the current indentation.</summary>
    public CodeWriter Lines(string text)
    {
        foreach (string line in text.Split('\n')) Line(line.TrimEnd());
        return this;
    }

    /// <summary>Opens a brace block.</summary>
    public CodeWriter Open(string header)
    {
        Line(header).Line("{");
        _depth++;
        return this;
    }

    /// <summary>Closes a brace block.</summary>
    public CodeWriter Close(string suffix = "")
    {
        _depth--;
        return Line("}" + suffix);
    }

    public override string ToString() => _text.ToString();
}
