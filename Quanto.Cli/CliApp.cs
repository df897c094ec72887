using Quanto.Serialization;

namespace Quanto.Cli;

/// <summary>The exit codes of the quanto command.</summary>
public static class ExitCodes
{
    /// <summary>Success (inspect: the file is valid).</summary>
    public const int Ok = 0;

    /// <summary>Bad input: a missing, unreadable, corrupt or invalid file, or nothing to do.</summary>
    public const int BadInput = 1;

    /// <summary>Bad command line: unknown command or option, bad value.</summary>
    public const int Usage = 2;
}

/// <summary>
/// The <c>quanto</c> command line. <see cref="Run"/> is the whole program, so tests drive it in-process with their
/// own writers; <c>Main</c> only passes the console.
/// </summary>
public static class CliApp
{
    /// <summary>The main help text.</summary>
    public const string MainHelp = """
        quanto: quantize and inspect TorchSharp / PyTorch checkpoints (Quanto.NET, optimum-quanto compatible)

        Usage:
          quanto quantize INPUT -o OUTPUT --weights QTYPE [options]   quantize the weights of a checkpoint
          quanto inspect FILE [--no-verify]                          list, describe and validate a checkpoint
          quanto --help | quanto COMMAND --help                      show help
          quanto --version                                           show the version

        INPUT is a .safetensors file, a *.safetensors.index.json (sharded checkpoint) or a folder holding either.
        QTYPE is one of qint8, qint4, qint2, qfloat8_e4m3fn (qfloat8), qfloat8_e5m2, qfloat8_e4m3fnuz.

        Examples:
          quanto quantize model.safetensors -o out/model.safetensors --weights qint4
          quanto quantize llama/ -o llama-w8/ --weights qint8 --exclude lm_head
          quanto quantize bert/ -o bert-w4.qnt --weights qint4 --embeddings
          quanto quantize model.safetensors -o model-w4g64.qnt --weights qint4 --group 64 --optimizer hqq
          quanto inspect out/model.safetensors

        Exit codes: 0 success, 1 bad or invalid input file, 2 bad command line.
        """;

    /// <summary>The help of <c>quanto quantize</c> (the tensor rule read from the registry of layer kinds).</summary>
    public static string QuantizeHelp { get; } = """
        quanto quantize: quantize the weights of a safetensors checkpoint

        Usage:
          quanto quantize INPUT -o OUTPUT --weights QTYPE [options]

        Quantizes every float (F32, F16, BF16) tensor named *.weight that is RANKS, the way
        optimum-quanto's quantize + freeze does; biases, norms, 1-D and integer tensors, and excluded weights are
        copied unchanged. Tensors are read and quantized one at a time.

        Arguments:
          INPUT                      .safetensors file, *.safetensors.index.json, or a folder holding either
          -o, --output OUTPUT        *.safetensors, *.qnt, or an existing folder (model.safetensors / model.qnt)
          -w, --weights QTYPE        qint8 | qint4 | qint2 | qfloat8_e4m3fn (qfloat8) | qfloat8_e5m2 | qfloat8_e4m3fnuz

        Options:
          -g, --group N              group size for qint2/qint4, a multiple of 8 (default 128; rows that 128 does
                                     not divide fall back to 96, 64, 32, else one group per row, as optimum-quanto)
          --include PATTERN          quantize only modules matching PATTERN (fnmatch: *, ?, [seq]); repeatable
          --exclude PATTERN          keep modules matching PATTERN float, e.g. lm_head; repeatable
          --embeddings               also quantize embedding tables (kept float by default, as optimum-quanto does)
          --embedding PATTERN        also treat 2-D weights of modules matching PATTERN as embedding tables;
                                     repeatable (built in: EMBEDDINGS)
          --optimizer hqq|max        scale/shift optimizer for qint2/qint4 (default hqq: more accurate, slower;
                                     max: optimum-quanto's default, byte for byte)
          --format safetensors|qnt   output container (default: from the OUTPUT extension, else safetensors)
                                       safetensors: optimum-quanto layout + its map beside it (quanto_qmap.json
                                                    for model.safetensors, NAME.quanto_qmap.json for NAME.safetensors);
                                                    sharded (model-00001-of-0000N.safetensors + index) past
                                                    --max-shard-size
                                       qnt:         one self-describing Quanto.NET package; any group size
          --max-shard-size SIZE      largest safetensors shard, e.g. 2GB, 500MB (default 4GB)
          -f, --force                replace an existing output (as one crash-safe set of files)
          -q, --quiet                no per-tensor table, only the totals
          --progress, --no-progress  progress on stderr (default: on for inputs of 256 MiB or more)

        Module paths are the tensor names without '.weight' (e.g. model.layers.0.mlp.up_proj). An embedding table
        and a Linear weight are both 2-D, so the module name tells them apart. Quantized tables (--embeddings) load
        into Quanto.NET's QEmbedding; optimum-quanto has no quantized Embedding and its requantize cannot read them.
        The safetensors format cannot store a group size, so readers re-derive it from the shape: a --group other
        than 128 that changes any weight's group is refused there; use --format qnt.

        Output exists: refused unless --force. Exit codes: 0 success, 1 bad input file, 2 bad command line.
        """.Replace("RANKS", QuantizePlan.DescribeRanks(), StringComparison.Ordinal)
        .Replace("EMBEDDINGS", string.Join(" ", QuantizeOptions.DefaultEmbeddingPatterns), StringComparison.Ordinal);

    /// <summary>The help of <c>quanto inspect</c>.</summary>
    public const string InspectHelp = """
        quanto inspect: describe and validate a checkpoint

        Usage:
          quanto inspect FILE [--no-verify]

        FILE is a .safetensors file (with its quantization map beside it, if any), a *.safetensors.index.json, a
        folder, or a .qnt package. Prints every tensor (dtype, shape, bytes, qtype), the quantization map (and which
        file it is) and totals, then validates: header offsets, checksums (Quanto.NET files carry XxHash64 per
        tensor; every tensor is read), that the map is the one the weights were saved with, and that each quantized
        module in the map has its tensors with the right dtypes and shapes.

        Options:
          --no-verify    skip reading the tensor data (headers and the map are still checked)

        Exit codes: 0 valid, 1 problems found (listed) or unreadable file, 2 bad command line.
        """;

    /// <summary>Runs the quanto command line with the given arguments and writers.</summary>
    /// <param name="args">The arguments, without the program name.</param>
    /// <param name="stdout">Normal output (tables, results).</param>
    /// <param name="stderr">Errors and progress.</param>
    /// <returns>The exit code (<see cref="ExitCodes"/>).</returns>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        string command = args.Length > 0 ? args[0] : "--help";
        string[] rest = args.Skip(1).ToArray();
        try
        {
            switch (command)
            {
                case "--help" or "-h" or "help":
                    stdout.WriteLine(rest.Length > 0 ? HelpFor(rest[0]) : MainHelp);
                    return ExitCodes.Ok;
                case "--version":
                    stdout.WriteLine($"quanto {typeof(CliApp).Assembly.GetName().Version?.ToString(3)}");
                    return ExitCodes.Ok;
                case "quantize":
                    {
                        var parsed = CliArguments.Parse(rest, QuantizeOptions.Valued, QuantizeOptions.Flags,
                            QuantizeOptions.Aliases);
                        if (parsed.Has("--help") || rest.Length == 0)
                        {
                            stdout.WriteLine(QuantizeHelp);
                            return rest.Length == 0 ? ExitCodes.Usage : ExitCodes.Ok;
                        }
                        return QuantizeCommand.Run(QuantizeOptions.From(parsed), stdout, stderr);
                    }
                case "inspect":
                    {
                        var parsed = CliArguments.Parse(rest, [], ["--no-verify", "--help"],
                            new Dictionary<string, string> { ["-h"] = "--help" });
                        if (parsed.Has("--help") || rest.Length == 0)
                        {
                            stdout.WriteLine(InspectHelp);
                            return rest.Length == 0 ? ExitCodes.Usage : ExitCodes.Ok;
                        }
                        if (parsed.Positionals.Count != 1)
                            throw new UsageException($"inspect takes one file, got {parsed.Positionals.Count}.");
                        return InspectCommand.Run(parsed.Positionals[0], !parsed.Has("--no-verify"), stdout, stderr);
                    }
                default:
                    throw new UsageException($"unknown command '{command}'; use quantize or inspect.");
            }
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"quanto: {e.Message}");
            stderr.WriteLine("Run 'quanto --help' for usage.");
            return ExitCodes.Usage;
        }
        catch (QuantoFormatException e)
        {
            stderr.WriteLine($"quanto: error: {e.Message}");
            return ExitCodes.BadInput;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or
            UnauthorizedAccessException or IOException)
        {
            stderr.WriteLine($"quanto: error: {e.Message}");
            return ExitCodes.BadInput;
        }
    }

    private static string HelpFor(string command) => command switch
    {
        "quantize" => QuantizeHelp,
        "inspect" => InspectHelp,
        _ => MainHelp,
    };
}
