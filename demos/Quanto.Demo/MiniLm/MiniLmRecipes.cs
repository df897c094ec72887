using Quanto.Kernels;
using Quanto.Models.Bert;
using Quanto.Nn;
using Quanto.Quantization;
using static TorchSharp.torch;

namespace Quanto.Demo.MiniLm;

/// <summary>
/// The library's recipes as the demo applies them to a freshly loaded float Bert, each through the public API and
/// with the library's documented defaults (nothing tuned to MiniLM). Each returns a note for the progress line (what
/// the recipe did, e.g. how many input groups SmoothQuant scaled), or null.
/// </summary>
internal static class MiniLmRecipes
{
    /// <summary>Weights only, round to nearest with the optimizer; optionally the embedding tables too.</summary>
    public static string? Weights(Bert model, QType qtype, int? group, Optimizer? optimizer, bool embeddings)
    {
        Quantizer.Quantize(model, qtype, optimizer: optimizer, groupSize: group, embeddings: embeddings);
        Quantizer.Freeze(model);
        return null;
    }

    /// <summary>int8 weights and activations, activation ranges from the calibration batches (with
    /// <paramref name="observer"/>, by default absmax with optimum-quanto's momentum); SmoothQuant (alpha 0.5) first
    /// when asked. The layers <paramref name="weightOnly"/> matches get int8 weights with float activations.</summary>
    public static string? Static(Bert model, IReadOnlyList<TokenBatch> calibration, string[] exclude, bool smooth,
        Observer? observer = null, string[]? weightOnly = null)
    {
        weightOnly ??= [];
        Quantizer.Quantize(model, QType.QInt8, QType.QInt8, exclude: [.. exclude, .. weightOnly]);
        // Layers whose inputs no static int8 range fits: int8 weights only (their run-time mode may quantize the
        // activations per token instead, see DynamicInt8).
        if (weightOnly.Length > 0) Quantizer.Quantize(model, QType.QInt8, include: weightOnly);
        string? note = null;
        if (smooth)
        {
            SmoothingReport report = Quantizer.SmoothQuant(model, Quantizer.QuantizedModules(model),
                () => Pass(model, calibration));
            note = Scaled(report);
        }
        using (new Calibration(observer: observer))
        {
            foreach (TokenBatch batch in calibration)
            {
                using (NewDisposeScope()) MiniLmEncoder.Embed(model, batch);
            }
        }
        Quantizer.Freeze(model);
        return note;
    }

    /// <summary>GPTQ over the calibration batches after round-to-nearest quantization with the optimizer (GPTQ's
    /// group scales then come from that optimizer unless <paramref name="options"/> names one); freezes.</summary>
    public static string? Gptq(Bert model, IReadOnlyList<TokenBatch> calibration, QType qtype, int? group,
        Optimizer? optimizer, GptqOptions options)
    {
        Quantizer.Quantize(model, qtype, optimizer: optimizer, groupSize: group);
        return RunGptq(model, calibration, options);
    }

    /// <summary>AWQ's activation-aware scales folded into the float weights (where a producer can take them), then
    /// GPTQ as <see cref="Gptq"/>; freezes.</summary>
    public static string? AwqGptq(Bert model, IReadOnlyList<TokenBatch> calibration, QType qtype, int? group,
        Optimizer? optimizer, GptqOptions options)
    {
        Quantizer.Quantize(model, qtype, optimizer: optimizer, groupSize: group);
        SmoothingReport awq = Quantizer.Awq(model, Quantizer.QuantizedModules(model), () => Pass(model, calibration),
            progress: new ConsoleProgressBar());
        return Scaled(awq) + "; " + RunGptq(model, calibration, options);
    }

    /// <summary>A mixed-precision plan within <paramref name="bitsPerWeight"/> (the library's default candidates
    /// unless given: qint2/qint4 in several group sizes, HQQ or GPTQ, and qint8), measured on the calibration
    /// batches with <paramref name="refinements"/> rounds of in-context re-scoring, then applied: each layer
    /// quantized as planned and GPTQ on the layers the plan gave GPTQ; freezes. The note lists the choices and the
    /// plan's bits per weight. <paramref name="progress"/> sees the planner's and GPTQ's steps (a bar on standard
    /// error in the demo). <paramref name="gptq"/>, when given, replaces the plan's rounding: every int2/int4 layer
    /// gets GPTQ with these options over all the calibration batches, while the plan itself is measured on the first
    /// <paramref name="planSentences"/> of them (the planner runs the model a few hundred times).</summary>
    public static string? Plan(Bert model, IReadOnlyList<TokenBatch> calibration, double bitsPerWeight,
        IEnumerable<PlanCandidate>? candidates = null, int refinements = 2,
        IProgress<QuantizationProgress>? progress = null, GptqOptions? gptq = null, int planSentences = int.MaxValue)
    {
        IReadOnlyList<TokenBatch> measured = FirstSentences(calibration, planSentences);
        QuantizationPlan measuredPlan = Quantizer.Plan(model, () => Pass(model, measured), bitsPerWeight, candidates,
            progress, refinements);
        QuantizationPlan plan = gptq is null ? measuredPlan : measuredPlan.WithGptq(gptq);
        model.Quantize(plan);
        string choices = string.Join(", ", plan.Layers.GroupBy(l => l.Choice.ToString())
            .OrderByDescending(g => g.Count()).Select(g => $"{g.Count()} {g.Key}"));
        GptqReport report = Quantizer.Gptq(Quantizer.QuantizedModules(model), plan, () => Pass(model, calibration),
            progress);
        Quantizer.Freeze(model);
        return string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{choices}; {plan.BitsPerWeight:F3} bits/weight, planner's measured error " +
            $"{measuredPlan.MeasuredModelError:E2}; GPTQ on {report.Layers.Count} layers");
    }

    /// <summary>Runs <paramref name="quantize"/> on the float model, then <see cref="Bert.TuneScales"/>: the group
    /// scales and shifts move so that the last hidden states on the calibration batches come closer to the float
    /// model's (masked squared error relative to the float states' energy); the codes stay.</summary>
    public static string? TunedScales(Bert model, IReadOnlyList<TokenBatch> calibration,
        Func<Bert, IReadOnlyList<TokenBatch>, string?> quantize, ScaleTuningOptions? options = null)
    {
        var ids = new List<Tensor>();
        var masks = new List<Tensor>();
        var targets = new List<Tensor>();
        try
        {
            using (no_grad())
            {
                foreach (TokenBatch batch in calibration)
                {
                    using var scope = NewDisposeScope();
                    (Tensor batchIds, Tensor mask) = batch.Tensors();
                    Tensor hidden = model.forward(batchIds, mask, zeros_like(batchIds));
                    ids.Add(batchIds.DetachFromDisposeScope());
                    masks.Add(mask.DetachFromDisposeScope());
                    targets.Add(hidden.DetachFromDisposeScope());
                }
            }
            string? note = quantize(model, calibration);
            ScaleTuningReport report = model.TuneScales(ids, masks, targets, options, new ConsoleProgressBar());
            string tuned = $"{report.Summary} (loss: the last hidden states' relative squared error)";
            return string.IsNullOrEmpty(note) ? tuned : $"{note}; {tuned}";
        }
        finally
        {
            foreach (Tensor t in ids.Concat(masks).Concat(targets)) t.Dispose();
        }
    }

    /// <summary>Int8 activations quantized on the fly at run time (per token for int8 weights, per block of 32
    /// inputs for 2/4-bit weights): a run-time setting, not saved, so it is applied again after a reload.</summary>
    public static void DynamicInt8(Bert model)
    {
        foreach (QModule module in Quantizer.QuantizedModules(model))
            module.DynamicActivations = DynamicActivations.Int8;
    }

    /// <summary>The calibration batches' sentence embeddings, as one tensor (the pass GPTQ, SmoothQuant and the
    /// planner run).</summary>
    public static Tensor Pass(Bert model, IReadOnlyList<TokenBatch> calibration)
    {
        using var scope = NewDisposeScope();
        Tensor[] parts = calibration.Select(b =>
        {
            (Tensor ids, Tensor mask) = b.Tensors();
            return model.SentenceEmbeddings(ids, mask);
        }).ToArray();
        return cat(parts).MoveToOuterDisposeScope();
    }

    /// <summary>The leading batches that hold at most <paramref name="sentences"/> sentences (at least one batch).
    /// </summary>
    private static IReadOnlyList<TokenBatch> FirstSentences(IReadOnlyList<TokenBatch> batches, int sentences)
    {
        int count = 0, taken = 0;
        while (taken < batches.Count && (taken == 0 || count + batches[taken].Count <= sentences))
            count += batches[taken++].Count;
        return taken == batches.Count ? batches : batches.Take(taken).ToArray();
    }

    private static string RunGptq(Bert model, IReadOnlyList<TokenBatch> calibration, GptqOptions options)
    {
        GptqReport report = Quantizer.Gptq(Quantizer.QuantizedModules(model), () => Pass(model, calibration),
            options, new ConsoleProgressBar());
        Quantizer.Freeze(model);
        return $"GPTQ on {report.Layers.Count} layers ({report.Skipped.Count} left rounded to nearest)";
    }

    private static string Scaled(SmoothingReport report) =>
        $"{report.Method}: {report.Groups.Count(g => g.Applied)} of {report.Groups.Count} input groups scaled";
}
