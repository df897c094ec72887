using System.Globalization;

namespace Quanto.Bench;

/// <summary>One matmul shape: y (m, n) = x (m, k) · Wᵀ, W (n, k).</summary>
internal readonly record struct BenchShape(int M, int K, int N, string Label = "")
{
    public override string ToString() => $"{M}x{K}x{N}";
}

/// <summary>The command line of Quanto.Bench (see its README for each option).</summary>
internal sealed record BenchOptions
{
    public const string Usage =
        "Quanto.Bench [--shape m,k,n]... [--grid] [--formats a,b,...] [--rounds R] [--seconds S] [--hot] [--quick]\n" +
        "             [--cnn] [--mlp] [--ilgpu] [--csv FILE] [--overhead] [--float-copy-limit ELEMENTS]\n" +
        "       Quanto.Bench --models [--quick] [--only A,B]\n" +
        "                                         (whole models: TinyLlama-1.1B and BERT-base shapes; --only: these\n" +
        "                                         Llama rows, bf16 always, no BERT rows)\n" +
        "       Quanto.Bench --gptq               (GPTQ time on one 4096 x 4096 layer)\n" +
        "       Quanto.Bench --attention [--quick] (one layer's decode attention as the KV cache grows)\n" +
        "       Quanto.Bench --minilm [--text DIR] [--only A,B]\n" +
        "                                         (accuracy on real all-MiniLM-L6-v2 weights)\n" +
        "With no shape option: the 4096 x 4096 GEMV and GEMM rows (m = 1, 16, 128), Llama-7B's MLP and the CNN.";

    /// <summary>Shapes from --shape (in order) and --grid.</summary>
    public IReadOnlyList<BenchShape> Shapes { get; init; } = [];

    /// <summary>Only these formats (null: all).</summary>
    public IReadOnlySet<string>? Formats { get; init; }

    /// <summary>Interleaved rounds: each round times every format of a shape once, one after another.</summary>
    public int Rounds { get; init; } = 1;

    /// <summary>Timed seconds per format and round.</summary>
    public double Seconds { get; init; } = 1.0;

    public bool Hot { get; init; }

    public bool Quick { get; init; }

    public bool CnnOnly { get; init; }

    public bool Mlp { get; init; }

    public bool Ilgpu { get; init; }

    public bool Overhead { get; init; }

    /// <summary>--models: the whole-model rows (ModelBench) instead of the kernel table.</summary>
    public bool Models { get; init; }

    /// <summary>--attention: one layer's decode attention as the KV cache grows (AttentionBench).</summary>
    public bool Attention { get; init; }

    /// <summary>--gptq: GPTQ's time on one 4096 x 4096 layer (GptqBench).</summary>
    public bool Gptq { get; init; }

    /// <summary>--minilm: accuracy on real all-MiniLM-L6-v2 weights (MiniLmBench).</summary>
    public bool MiniLm { get; init; }

    /// <summary>--text DIR: the sentences MiniLmBench embeds (null: the MiniLM demo's corpus).</summary>
    public string? TextFolder { get; init; }

    /// <summary>--only A,B: the MiniLmBench configurations, or with --models the Llama rows, to run (null: all).
    /// </summary>
    public string? Only { get; init; }

    public string? CsvPath { get; init; }

    /// <summary>CpuKernels.FloatCopyLimit for the run (null: the library's default).</summary>
    public long? FloatCopyLimit { get; init; }

    /// <summary>True when shapes were given: only they are run (plus --mlp / --cnn when asked).</summary>
    public bool Custom => Shapes.Count > 0;

    /// <summary>The grid: m in {1, 4, 16, 64, 256, 1024} x the linear layers of BERT-base, MiniLM-L6 and Llama-7B.</summary>
    public static IReadOnlyList<BenchShape> Grid { get; } =
        (from m in new[] { 1, 4, 16, 64, 256, 1024 }
         from layer in new (string Model, int K, int N)[]
         {
             ("minilm", 384, 384), ("minilm", 384, 1536), ("minilm", 1536, 384),
             ("bert", 768, 768), ("bert", 768, 3072), ("bert", 3072, 768),
             ("llama7b", 4096, 4096), ("llama7b", 4096, 11008), ("llama7b", 11008, 4096),
         }
         select new BenchShape(m, layer.K, layer.N, layer.Model)).ToArray();

    /// <exception cref="ArgumentException">An unknown option or a malformed value; the message says which.</exception>
    public static BenchOptions Parse(IReadOnlyList<string> args)
    {
        var shapes = new List<BenchShape>();
        var options = new BenchOptions();
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{arg} needs a value.");
            switch (arg)
            {
                case "--shape": shapes.Add(ParseShape(Value())); break;
                case "--grid": shapes.AddRange(Grid); break;
                case "--formats":
                    options = options with { Formats = Value().Split(',', StringSplitOptions.RemoveEmptyEntries).ToHashSet() };
                    break;
                case "--rounds": options = options with { Rounds = Positive(arg, Value()) }; break;
                case "--seconds": options = options with { Seconds = ParseSeconds(Value()) }; break;
                case "--csv": options = options with { CsvPath = Value() }; break;
                case "--float-copy-limit": options = options with { FloatCopyLimit = Positive(arg, Value(), zero: true) }; break;
                case "--hot": options = options with { Hot = true }; break;
                case "--quick": options = options with { Quick = true }; break;
                case "--cnn": options = options with { CnnOnly = true }; break;
                case "--mlp": options = options with { Mlp = true }; break;
                case "--ilgpu": options = options with { Ilgpu = true }; break;
                case "--overhead": options = options with { Overhead = true }; break;
                case "--models": options = options with { Models = true }; break;
                case "--gptq": options = options with { Gptq = true }; break;
                case "--attention": options = options with { Attention = true }; break;
                case "--minilm": options = options with { MiniLm = true }; break;
                case "--text": options = options with { TextFolder = Value() }; break;
                case "--only": options = options with { Only = Value() }; break;
                default: throw new ArgumentException($"Unknown option '{arg}'.\n{Usage}");
            }
        }
        return options with { Shapes = shapes };
    }

    /// <summary>"m,k,n" (three positive integers).</summary>
    public static BenchShape ParseShape(string text)
    {
        string[] parts = text.Split(',');
        if (parts.Length != 3 || !parts.All(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v > 0))
            throw new ArgumentException($"--shape takes m,k,n (three positive integers, e.g. 16,4096,4096); got '{text}'.");
        int[] v = parts.Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray();
        return new BenchShape(v[0], v[1], v[2]);
    }

    private static int Positive(string option, string text, bool zero = false) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value) && (value > 0 || zero)
            ? value
            : throw new ArgumentException($"{option} takes a {(zero ? "non-negative" : "positive")} integer; got '{text}'.");

    private static double ParseSeconds(string text) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && value > 0
            ? value
            : throw new ArgumentException($"--seconds takes a positive number; got '{text}'.");
}
