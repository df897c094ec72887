namespace Quanto.Cli;

/// <summary>A command-line mistake: the message is shown with a pointer to --help, and the exit code is 2.</summary>
/// <param name="message">What is wrong, in the user's terms.</param>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// A small GNU-style argument parser: positional arguments, <c>--name value</c>, <c>--name=value</c>, short aliases
/// (<c>-o value</c>), repeatable options and flags. Unknown options are errors, never ignored.
/// </summary>
public sealed class CliArguments
{
    private readonly Dictionary<string, List<string>> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    /// <summary>Positional arguments, in order.</summary>
    public List<string> Positionals { get; } = [];

    /// <summary>Parses <paramref name="args"/> against the known options.</summary>
    /// <param name="args">The arguments after the command name.</param>
    /// <param name="valued">Options that take a value, long names ("--weights").</param>
    /// <param name="flags">Options without a value ("--force").</param>
    /// <param name="aliases">Short names to long names ("-o" -> "--output").</param>
    /// <exception cref="UsageException">An unknown option, or an option without its value.</exception>
    public static CliArguments Parse(IReadOnlyList<string> args, IReadOnlyCollection<string> valued,
        IReadOnlyCollection<string> flags, IReadOnlyDictionary<string, string>? aliases = null)
    {
        var result = new CliArguments();
        bool onlyPositionals = false;
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            if (onlyPositionals || arg.Length < 2 || arg[0] != '-')
            {
                result.Positionals.Add(arg);
                continue;
            }
            if (arg == "--")
            {
                onlyPositionals = true;
                continue;
            }
            string name = arg;
            string? inline = null;
            int eq = arg.IndexOf('=', StringComparison.Ordinal);
            if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                name = arg[..eq];
                inline = arg[(eq + 1)..];
            }
            if (aliases is not null && aliases.TryGetValue(name, out string? longName)) name = longName;
            if (flags.Contains(name))
            {
                if (inline is not null) throw new UsageException($"option {name} takes no value.");
                result._flags.Add(name);
            }
            else if (valued.Contains(name))
            {
                string value = inline ?? (i + 1 < args.Count
                    ? args[++i]
                    : throw new UsageException($"option {name} needs a value."));
                if (!result._values.TryGetValue(name, out List<string>? list)) result._values[name] = list = [];
                list.Add(value);
            }
            else
            {
                string known = string.Join(", ", valued.Concat(flags).Order(StringComparer.Ordinal));
                throw new UsageException($"unknown option '{arg}' (known: {known}).");
            }
        }
        return result;
    }

    /// <summary>True when the flag was given.</summary>
    public bool Has(string flag) => _flags.Contains(flag);

    /// <summary>Every value of a repeatable option, in order (empty when absent).</summary>
    public IReadOnlyList<string> All(string option) =>
        _values.TryGetValue(option, out List<string>? list) ? list : [];

    /// <summary>The value of a single-valued option, or null when absent.</summary>
    /// <exception cref="UsageException">The option was given more than once.</exception>
    public string? Single(string option)
    {
        IReadOnlyList<string> all = All(option);
        return all.Count switch
        {
            0 => null,
            1 => all[0],
            _ => throw new UsageException($"option {option} was given {all.Count} times; give it once."),
        };
    }
}
