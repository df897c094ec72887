using System.Globalization;
using Quanto.Quantization;

namespace Quanto.Cli;

/// <summary>The output container of <c>quanto quantize</c>.</summary>
public enum OutputFormat
{
    /// <summary>optimum-quanto's layout: safetensors (sharded when large) + quanto_qmap.json beside it.</summary>
    Safetensors,

    /// <summary>Quanto.NET's single-file .qnt package (stores the group size; any group size allowed).</summary>
    Qnt,
}

/// <summary>The parsed and checked options of <c>quanto quantize</c>.</summary>
/// <param name="Input">Checkpoint file, index or folder.</param>
/// <param name="Output">Target .safetensors or .qnt file.</param>
/// <param name="Format">Output container.</param>
/// <param name="Weights">Weight qtype.</param>
/// <param name="GroupSize">Requested group size for qint2/qint4.</param>
/// <param name="Include">Module patterns to quantize (empty: all).</param>
/// <param name="Exclude">Module patterns to keep float.</param>
/// <param name="OptimizerName">"max", "hqq" or "absmax" (8-bit).</param>
/// <param name="Force">Overwrite existing output files (atomically).</param>
/// <param name="MaxShardBytes">Largest safetensors shard written.</param>
/// <param name="Quiet">No per-tensor table.</param>
/// <param name="Progress">Progress lines on stderr: null decides by input size.</param>
/// <param name="Embeddings">Also quantize embedding tables (2-D weights of modules matching
/// <paramref name="EmbeddingPatterns"/>), which are kept float by default as optimum-quanto does.</param>
/// <param name="EmbeddingPatterns">Module patterns that name embedding tables: <see cref="DefaultEmbeddingPatterns"/>
/// plus each --embedding.</param>
public sealed record QuantizeOptions(
    string Input, string Output, OutputFormat Format, QType Weights, int GroupSize, IReadOnlyList<string> Include,
    IReadOnlyList<string> Exclude, string OptimizerName, bool Force, long MaxShardBytes, bool Quiet, bool? Progress,
    bool Embeddings, IReadOnlyList<string> EmbeddingPatterns)
{
    /// <summary>
    /// Module paths of embedding tables in Hugging Face checkpoints (fnmatch): BERT's embeddings.word_embeddings /
    /// position_embeddings / token_type_embeddings, Llama's and OPT's embed_tokens / embed_positions, GPT-NeoX's
    /// embed_in, GPT-2's wte / wpe, T5's shared. A safetensors file holds tensors, not modules: a 2-D weight can be
    /// a Linear or an Embedding, so its name decides.
    /// </summary>
    public static readonly string[] DefaultEmbeddingPatterns = ["*embed*", "wte", "*.wte", "wpe", "*.wpe", "shared",
        "*.shared"];

    /// <summary>Options with a value.</summary>
    public static readonly string[] Valued =
        ["--output", "--weights", "--group", "--include", "--exclude", "--optimizer", "--format", "--max-shard-size",
            "--embedding"];

    /// <summary>Options without a value.</summary>
    public static readonly string[] Flags =
        ["--force", "--quiet", "--progress", "--no-progress", "--embeddings", "--help"];

    /// <summary>Short names.</summary>
    public static readonly Dictionary<string, string> Aliases = new(StringComparer.Ordinal)
    {
        ["-o"] = "--output", ["-w"] = "--weights", ["-g"] = "--group", ["-f"] = "--force", ["-q"] = "--quiet",
        ["-h"] = "--help",
    };

    /// <summary>Default largest shard: 4 GiB of tensor data.</summary>
    public const long DefaultMaxShardBytes = 4L << 30;

    /// <summary>Builds the options from parsed arguments, checking every value.</summary>
    /// <exception cref="UsageException">A missing or bad value; the message says what is valid.</exception>
    public static QuantizeOptions From(CliArguments args)
    {
        if (args.Positionals.Count == 0) throw new UsageException("quantize needs an input checkpoint.");
        if (args.Positionals.Count > 1)
            throw new UsageException($"quantize takes one input, got {args.Positionals.Count}: " +
                string.Join(" ", args.Positionals) + " (give the output with -o).");
        string output = args.Single("--output") ?? throw new UsageException("quantize needs an output: -o OUT.");
        string weightsName = args.Single("--weights") ?? throw new UsageException(
            $"quantize needs a weight qtype: --weights NAME (one of {ValidQTypes}).");
        if (!QTypes.TryParse(weightsName, out QType weights))
            throw new UsageException($"unknown qtype '{weightsName}'; valid: {ValidQTypes}.");
        int group = ParseGroup(args.Single("--group"));
        OutputFormat format = ParseFormat(args.Single("--format"), ref output);
        string optimizer = (args.Single("--optimizer") ?? (weights.Info().IsPacked ? "hqq" : "absmax"))
            .ToLowerInvariant();
        bool packed = weights.Info().IsPacked;
        if (optimizer is not ("max" or "hqq" or "absmax"))
            throw new UsageException($"unknown optimizer '{optimizer}'; valid: max, hqq (qint2/qint4), absmax (8-bit).");
        if (packed && optimizer == "absmax")
            throw new UsageException($"{weights.QuantoName()} is affine: use --optimizer max or hqq.");
        if (!packed && optimizer != "absmax")
            throw new UsageException($"{weights.QuantoName()} is symmetric per channel; --optimizer {optimizer} " +
                "applies to qint2/qint4 only.");
        if (!packed && args.Single("--group") is not null)
            throw new UsageException($"--group applies to qint2/qint4; {weights.QuantoName()} is per channel.");
        if (args.Has("--progress") && args.Has("--no-progress"))
            throw new UsageException("give --progress or --no-progress, not both.");
        bool? progress = args.Has("--progress") ? true : args.Has("--no-progress") ? false : null;
        return new QuantizeOptions(args.Positionals[0], output, format, weights, group, args.All("--include"),
            args.All("--exclude"), optimizer, args.Has("--force"), ParseSize(args.Single("--max-shard-size")),
            args.Has("--quiet"), progress, args.Has("--embeddings"),
            [.. DefaultEmbeddingPatterns, .. args.All("--embedding")]);
    }

    /// <summary>The optimizer object for the options.</summary>
    public Optimizer CreateOptimizer() => OptimizerName switch
    {
        "hqq" => new HqqOptimizer(),
        "max" => new MaxOptimizer(),
        _ => new AbsmaxOptimizer(),
    };

    /// <summary>The qtype names accepted by --weights.</summary>
    public static string ValidQTypes =>
        string.Join(", ", QTypes.All.Select(q => q.QuantoName())) + " (alias: qfloat8 = qfloat8_e4m3fn)";

    private static int ParseGroup(string? text)
    {
        if (text is null) return Quantization.GroupSize.Default;
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int group) || group <= 0 ||
            group % 8 != 0)
        {
            throw new UsageException($"bad group size '{text}': use a positive multiple of 8 (e.g. 32, 64, 128).");
        }
        return group;
    }

    private static OutputFormat ParseFormat(string? text, ref string output)
    {
        bool endsQnt = output.EndsWith(".qnt", StringComparison.OrdinalIgnoreCase);
        bool endsSafetensors = output.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase);
        bool folder = Directory.Exists(output) || output.EndsWith('/') || output.EndsWith('\\');
        OutputFormat format = text?.ToLowerInvariant() switch
        {
            null => endsQnt ? OutputFormat.Qnt : OutputFormat.Safetensors,
            "safetensors" => OutputFormat.Safetensors,
            "qnt" => OutputFormat.Qnt,
            _ => throw new UsageException($"unknown format '{text}'; valid: safetensors, qnt."),
        };
        if (folder)
        {
            output = Path.Combine(output, format == OutputFormat.Qnt ? "model.qnt" : "model.safetensors");
            return format;
        }
        if (format == OutputFormat.Qnt && !endsQnt)
            throw new UsageException($"--format qnt writes a .qnt file; name the output *.qnt (got {output}).");
        if (format == OutputFormat.Safetensors && !endsSafetensors)
            throw new UsageException(
                $"the output must be a *.safetensors or *.qnt file, or a folder (got {output}).");
        return format;
    }

    private static long ParseSize(string? text)
    {
        if (text is null) return DefaultMaxShardBytes;
        string t = text.Trim().ToUpperInvariant();
        long unit = 1;
        foreach (var (suffix, factor) in new[] { ("GB", 1L << 30), ("MB", 1L << 20), ("KB", 1L << 10), ("B", 1L) })
        {
            if (t.EndsWith(suffix, StringComparison.Ordinal))
            {
                t = t[..^suffix.Length];
                unit = factor;
                break;
            }
        }
        if (!double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || value <= 0)
            throw new UsageException($"bad --max-shard-size '{text}': use e.g. 2GB, 500MB.");
        return Math.Max(1, (long)(value * unit));
    }
}
