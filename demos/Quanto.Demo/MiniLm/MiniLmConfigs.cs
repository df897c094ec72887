using Quanto.Models.Bert;
using Quanto.Quantization;

namespace Quanto.Demo.MiniLm;

/// <summary>One way to run all-MiniLM-L6-v2 through the library.</summary>
/// <param name="Name">Its row in the tables.</param>
/// <param name="Recipe">What it does, in a few words (the table's note).</param>
/// <param name="Apply">Quantizes a freshly loaded float model in place (calibrating on the given batches where it
/// needs activation ranges) and freezes it, returning a note for the progress line (or null); null for the float
/// model.</param>
/// <param name="RunTime">Run-time settings (not saved in the file): applied to the quantized model and again to the
/// model reloaded from its file.</param>
/// <param name="Slow">Whether it runs the model many times while quantizing (GPTQ: once per layer; the planner: once
/// per layer and candidate), so the quick subset leaves it out.</param>
internal sealed record MiniLmConfig(string Name, string Recipe,
    Func<Bert, IReadOnlyList<TokenBatch>, string?>? Apply, Action<Bert>? RunTime = null, bool Slow = false)
{
    /// <summary>False for the float model.</summary>
    public bool IsQuantized => Apply is not null;

    /// <summary>Saved as optimum-quanto's safetensors + quanto_qmap.json (our loader also reads quantized embedding
    /// tables there, which optimum-quanto's cannot).</summary>
    public const string FileFormat = ".safetensors";
}

/// <summary>
/// Every configuration the demo measures, through the public API (the eager <see cref="Quantizer"/> on the model the
/// Hugging Face loader built). Embeddings stay float unless a row says otherwise, as optimum-quanto does.
/// </summary>
internal static class MiniLmConfigs
{
    /// <summary>The LayerNorms, by module path (HF spells them "LayerNorm").</summary>
    private const string LayerNorms = "*LayerNorm";

    /// <summary>Each layer's FFN output projection (input: the GELU's output), not attention's output.dense (an fnmatch
    /// "*" would also match "0.attention").</summary>
    internal static readonly string[] FfnOutput = ["encoder.layer.?.output.dense", "encoder.layer.??.output.dense"];

    /// <summary>The budget of the mixed-precision row: issue 16's target for a small model.</summary>
    public const double PlanBits = 4.5;

    /// <summary>The budget of the low mixed-precision row: issue 17's "at most 3 bits, mixed".</summary>
    public const double LowPlanBits = 3.0;

    /// <summary>GPTQ with columns in order of decreasing Hessian diagonal (static groups).</summary>
    private static readonly GptqOptions ActOrder = new() { ActOrder = true };

    public static readonly MiniLmConfig Float = new("fp32", "float32, Hugging Face checkpoint", null);

    public static readonly MiniLmConfig[] All =
    [
        Float,
        Weights("w8", "int8 per channel", QType.QInt8),
        Weights("w4 g128 Max", "int4 group 128, Max (optimum-quanto's default optimizer)", QType.QInt4, 128,
            new MaxOptimizer()),
        Weights("w4 g128 HQQ", "int4 group 128, HQQ (the default optimizer)", QType.QInt4, 128, new HqqOptimizer()),
        new("w4 g128 GPTQ", "int4 group 128, HQQ scales, GPTQ on the calibration batches",
            (m, c) => MiniLmRecipes.Gptq(m, c, QType.QInt4, 128, new HqqOptimizer(), new GptqOptions()), Slow: true),
        new("w4 g128 GPTQ act-order", "as w4 g128 GPTQ, columns in order of decreasing Hessian diagonal",
            (m, c) => MiniLmRecipes.Gptq(m, c, QType.QInt4, 128, new HqqOptimizer(), ActOrder), Slow: true),
        Weights("w2 g128 Max", "int2 group 128, Max (optimum-quanto's default optimizer)", QType.QInt2, 128,
            new MaxOptimizer()),
        Weights("w2 g128 HQQ", "int2 group 128, HQQ (the default optimizer)", QType.QInt2, 128, new HqqOptimizer()),
        new("w2 g128 GPTQ", "int2 group 128, HQQ scales, GPTQ on the calibration batches",
            (m, c) => MiniLmRecipes.Gptq(m, c, QType.QInt2, 128, new HqqOptimizer(), new GptqOptions()), Slow: true),
        Weights("fp8 e4m3fn", "float8 e4m3fn per channel", QType.QFloat8E4M3Fn),
        Weights("w8 dyn-a8", "int8 weights, int8 activations per token at run time", QType.QInt8,
            runTime: MiniLmRecipes.DynamicInt8),
        Weights("w4 g128 HQQ dyn-a8", "int4 group 128 HQQ, int8 activations per block of 32 at run time",
            QType.QInt4, 128, new HqqOptimizer(), runTime: MiniLmRecipes.DynamicInt8),
        Static("w8a8 static", "int8 weights + calibrated int8 activations", []),
        Static("w8a8 static, LN float", "as w8a8, LayerNorm inputs/outputs left float", [LayerNorms]),
        Static("w8a8 static, LN float, FFN out w8", "as w8a8 LN float, the FFN output layers int8 weights only " +
            "(typical GELU outputs span 1-4 int8 steps of a static range)", [LayerNorms], weightOnly: FfnOutput),
        Static("w8a8 static, LN float, FFN out dyn-a8", "as w8a8 static, LN float, FFN out w8, those layers with " +
            "int8 activations per token at run time", [LayerNorms], weightOnly: FfnOutput,
            runTime: MiniLmRecipes.DynamicInt8),
        Weights("w8 + embeddings", "int8 per channel, embedding tables int8 per row too", QType.QInt8,
            embeddings: true),
        Weights("w4 HQQ + embeddings", "int4 group 128 HQQ, embedding tables too", QType.QInt4, 128,
            new HqqOptimizer(), embeddings: true),
    ];

    /// <summary>Configurations left out of the default run because they take minutes to quantize and do not beat a
    /// default row (<c>--only plan</c>, <c>--only SmoothQuant</c>, <c>--only asymmetric</c>, ... run them): the
    /// planner measures every layer under 13 candidates (a pass of the calibration batches for each candidate on
    /// the layer's (bits, layer error) hull, one more for GPTQ's Hessian), then re-scores in context (up to 4
    /// passes per layer and round, 2 rounds): minutes on 2 cores; SmoothQuant finds each group's producer by perturbing channels, and on
    /// post-LN BERT only attention's value -> output projection can take its scales (so AWQ too); the GPTQ
    /// variants (MSE group ranges, asymmetric targets, AWQ first) are the literature's refinements of the default
    /// GPTQ rows, measured against them.</summary>
    public static readonly MiniLmConfig[] Optional =
    [
        Static("w8a8 SmoothQuant, LN float", "as w8a8 LN float, SmoothQuant scales first", [LayerNorms],
            smooth: true),
        // Other static ranges for the LN-float model (calibration observers): none beat absmax here.
        Static("w8a8 static running max, LN float", "as w8a8 LN float, each range the widest of every batch",
            [LayerNorms], observer: () => new RunningMaxObserver()),
        Static("w8a8 static MSE ranges, LN float", "as w8a8 LN float, each range by MSE clipping search",
            [LayerNorms], observer: () => new MseObserver()),
        Static("w8a8 static p99.99 ranges, LN float", "as w8a8 LN float, each range the 99.99th percentile of |x|",
            [LayerNorms], observer: () => new PercentileObserver(99.99)),
        new($"plan <= {PlanBits} bits", $"per-layer qtype/group/optimizer/GPTQ within {PlanBits} bits/weight",
            (m, c) => MiniLmRecipes.Plan(m, c, PlanBits, progress: new ConsoleProgressBar()), Slow: true),
        new("w4 g128 GPTQ act-order MSE", "as w4 g128 GPTQ act-order, group ranges by MSE clipping search",
            (m, c) => MiniLmRecipes.Gptq(m, c, QType.QInt4, 128, null,
                ActOrder with { GroupOptimizer = new MseOptimizer() }), Slow: true),
        new("w4 g128 GPTQ act-order asymmetric", "as w4 g128 GPTQ act-order, each layer aiming at the float " +
            "model's output from its quantized inputs (GPTAQ)",
            (m, c) => MiniLmRecipes.Gptq(m, c, QType.QInt4, 128, null, ActOrder with { Asymmetric = true }),
            Slow: true),
        new("w4 g128 AWQ + GPTQ act-order", "AWQ scales where a producer folds them, then w4 g128 GPTQ act-order",
            (m, c) => MiniLmRecipes.AwqGptq(m, c, QType.QInt4, 128, null, ActOrder), Slow: true),
        new($"plan <= {LowPlanBits} bits", $"per-layer qtype/group/optimizer/GPTQ within {LowPlanBits} bits/weight",
            (m, c) => MiniLmRecipes.Plan(m, c, LowPlanBits, progress: new ConsoleProgressBar()),
            Slow: true),
        // The plan measured on the first 64 calibration sentences, then every int2/int4 layer by GPTQ act-order with
        // GPTAQ's asymmetric targets over all of them (run with --calibration 512: GPTAQ needs the data).
        new($"plan <= {LowPlanBits} bits, GPTAQ", $"as plan <= {LowPlanBits} bits, then GPTQ act-order asymmetric " +
            "on every int2/int4 layer",
            (m, c) => MiniLmRecipes.Plan(m, c, LowPlanBits, progress: new ConsoleProgressBar(),
                gptq: ActOrder with { Asymmetric = true }, planSentences: Corpus.DefaultCalibration), Slow: true),
        new($"plan <= {PlanBits} bits, GPTAQ", $"as plan <= {PlanBits} bits, then GPTQ act-order asymmetric " +
            "on every int2/int4 layer",
            (m, c) => MiniLmRecipes.Plan(m, c, PlanBits, progress: new ConsoleProgressBar(),
                gptq: ActOrder with { Asymmetric = true }, planSentences: Corpus.DefaultCalibration), Slow: true),
        // Scale tuning after rounding or GPTQ: the same codes, group scales and shifts fitted to the float model's
        // hidden states on the calibration batches.
        new("w4 g128 HQQ + tuned scales", "as w4 g128 HQQ, then the group scales and shifts tuned to the float " +
            "model's hidden states", (m, c) => MiniLmRecipes.TunedScales(m, c,
                (q, _) => MiniLmRecipes.Weights(q, QType.QInt4, 128, new HqqOptimizer(), false)), Slow: true),
        new("w4 g128 GPTAQ + tuned scales", "as w4 g128 GPTQ act-order asymmetric, then the group scales and " +
            "shifts tuned to the float model's hidden states", (m, c) => MiniLmRecipes.TunedScales(m, c,
                (q, b) => MiniLmRecipes.Gptq(q, b, QType.QInt4, 128, null, ActOrder with { Asymmetric = true })),
            Slow: true),
        // The planner without its in-context rounds (each layer scored with every other layer float), to show what
        // those rounds buy.
        new($"plan <= {LowPlanBits} bits, first-order", $"as plan <= {LowPlanBits} bits, without re-scoring in context",
            (m, c) => MiniLmRecipes.Plan(m, c, LowPlanBits, refinements: 0, progress: new ConsoleProgressBar()),
            Slow: true),
        new($"plan <= {PlanBits} bits, first-order", $"as plan <= {PlanBits} bits, without re-scoring in context",
            (m, c) => MiniLmRecipes.Plan(m, c, PlanBits, refinements: 0, progress: new ConsoleProgressBar()),
            Slow: true),
    ];

    /// <summary>The configurations that quantize in about a second each (no GPTQ, no planning).</summary>
    public static IReadOnlyList<MiniLmConfig> Quick => All.Where(c => !c.Slow).ToArray();

    /// <summary>The configurations, default or optional, whose names contain one of <paramref name="names"/> (the
    /// float model always).</summary>
    /// <exception cref="ArgumentException">A name matches no configuration.</exception>
    public static IReadOnlyList<MiniLmConfig> Matching(IReadOnlyCollection<string> names)
    {
        MiniLmConfig[] every = [.. All, .. Optional];
        foreach (string name in names.Where(n => !every.Any(c => c.Name.Contains(n, StringComparison.Ordinal))))
        {
            throw new ArgumentException($"--only: no MiniLM configuration is named like '{name}'; the names are: " +
                                        string.Join(", ", every.Select(c => c.Name)), nameof(names));
        }
        return every.Where(c => c == Float || names.Any(n => c.Name.Contains(n, StringComparison.Ordinal))).ToArray();
    }

    private static MiniLmConfig Weights(string name, string recipe, QType qtype, int? group = null,
        Optimizer? optimizer = null, bool embeddings = false, Action<Bert>? runTime = null) =>
        new(name, recipe, (model, _) => MiniLmRecipes.Weights(model, qtype, group, optimizer, embeddings), runTime);

    private static MiniLmConfig Static(string name, string recipe, string[] exclude, bool smooth = false,
        Func<Observer>? observer = null, string[]? weightOnly = null, Action<Bert>? runTime = null) =>
        new(name, recipe, (model, calibration) => MiniLmRecipes.Static(model, calibration, exclude, smooth,
            observer?.Invoke(), weightOnly), runTime);
}
