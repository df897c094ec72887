using System.Diagnostics;
using System.Globalization;
using Quanto.Nn;
using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto;

public static partial class Quantizer
{
    /// <summary>
    /// <see cref="Gptq(IEnumerable{QModule}, Func{Tensor}, GptqOptions?, IProgress{QuantizationProgress}?)"/> for an
    /// eager model quantized with <see cref="Quantize"/> (dynamic mode), calibrated on <paramref name="samples"/>.
    /// </summary>
    /// <param name="model">The quantized model (not frozen).</param>
    /// <param name="samples">Calibration batches (128 or more rows of representative inputs).</param>
    /// <param name="options">GPTQ settings.</param>
    /// <param name="progress">Reports each layer's progress (e.g. a <see cref="ConsoleProgressBar"/>).</param>
    public static GptqReport Gptq(nn.Module<Tensor, Tensor> model, IEnumerable<Tensor> samples,
        GptqOptions? options = null, IProgress<QuantizationProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(samples);
        return Gptq(QuantizedModules(model), CalibrationPass(model, samples), options, progress);
    }

    /// <summary>The model on each batch, outputs concatenated along dim 0 (a pass for the probing algorithms).
    /// </summary>
    private static Func<Tensor> CalibrationPass(nn.Module<Tensor, Tensor> model, IEnumerable<Tensor> samples)
    {
        List<Tensor> batches = samples.ToList();
        if (batches.Count == 0) throw new ArgumentException("Give at least one calibration batch.", nameof(samples));
        return () => cat(batches.Select(model.forward).ToList(), 0);
    }

    /// <summary>
    /// Quantizes the weights of <paramref name="modules"/> with GPTQ and freezes them: layer after layer (in the
    /// order the pass reaches them), the layer's inputs over <paramref name="calibrationPass"/> give its Hessian,
    /// GPTQ rounds its weight with the module's qtype, group size and (2/4-bit) optimizer, and later layers see the
    /// quantized result, as in the paper's sequential mode. One layer's Hessian is held at a time; the pass runs once
    /// per layer, in float (activation quantization and calibration are off during it). Works for eager models and
    /// for generated [Quantize] twins (pass <c>model.QuantizedModules()</c> and a pass that calls
    /// <c>ForwardQuantized</c>). Modules it cannot handle (float8 or float weights, frozen, grouped convolutions,
    /// not reached by the pass) are listed in the report and left as they are.
    /// </summary>
    /// <param name="modules">Every quantized module of the model (all are probed, only the eligible are changed).
    /// </param>
    /// <param name="calibrationPass">Runs the model on the calibration batches and returns its output.</param>
    /// <param name="options">GPTQ settings; <see cref="GptqOptions.GroupOptimizer"/> defaults to each module's
    /// affine optimizer, else <see cref="Optimizer.DefaultFor"/>'s (HQQ).</param>
    /// <param name="progress">Reports each layer's progress.</param>
    /// <returns>Per layer: calibration rows, and the relative output error on them, round-to-nearest vs GPTQ.
    /// </returns>
    /// <exception cref="InvalidOperationException">A module is already being measured, or a Hessian is degenerate.
    /// Nothing is frozen then.</exception>
    public static GptqReport Gptq(IEnumerable<QModule> modules, Func<Tensor> calibrationPass,
        GptqOptions? options = null, IProgress<QuantizationProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(modules);
        ArgumentNullException.ThrowIfNull(calibrationPass);
        options ??= new GptqOptions();
        List<QModule> all = modules.ToList();
        var skipped = new List<SkippedModuleInfo>();
        var results = new List<GptqLayerResult>();
        var built = new List<(QModule Module, QuantizedWeight Weight, Tensor Dequantized)>();
        try
        {
            using (ModuleProbe probe = ModuleProbe.Attach(all))
            {
                List<QModule> order = probe.Order(calibrationPass);
                foreach (QModule module in all.Where(m => !order.Contains(m) && m.WeightQType is not null))
                    skipped.Add(Skip(module, "the calibration pass never reached it"));
                var targets = new List<QModule>();
                foreach (QModule module in order.Where(m => m.WeightQType is not null))
                {
                    if (GptqRefusal(module) is string why) skipped.Add(Skip(module, why));
                    else targets.Add(module);
                }
                for (int index = 0; index < targets.Count; index++)
                {
                    QModule module = targets[index];
                    var watch = Stopwatch.StartNew();
                    Tensor weight = module.FloatWeight!;
                    // A small layer's passes, Hessian, factorisation and column steps are all small libtorch ops.
                    using var threads = TorchThreads.For(weight);
                    long d = weight.NumberOfElements / weight.shape[0];
                    using var hessian = new GptqHessian(d, weight.device);
                    using GptqTarget? target = options.Asymmetric && built.Count > 0
                        ? FloatInputs(probe, calibrationPass, module, d, built)
                        : null;
                    probe.Run(calibrationPass, (m, x) =>
                    {
                        if (!ReferenceEquals(m, module)) return;
                        hessian.AddInputOf(m, x);
                        target?.AddQuantizedInput(x);
                    }).Dispose();
                    GptqOptions layerOptions = options.GroupOptimizer is null && module.Optimizer is AffineOptimizer a
                        ? options with { GroupOptimizer = a }
                        : options;
                    using Tensor aim = Aim(target, weight, hessian, options.Damping);
                    int i = index;
                    QuantizedWeight q = Quantization.Gptq.Quantize(aim, hessian.Matrix, module.WeightQType!.Value,
                        module.GroupSize, layerOptions,
                        f => progress?.Report(new QuantizationProgress("GPTQ", module.Path, i, targets.Count, f)));
                    Tensor dq = q.Dequantize().DetachFromDisposeScope();
                    built.Add((module, q, dq));
                    probe.SetWeight(module, dq);
                    double rtn = RoundToNearestError(module, weight, aim, hessian.Matrix);
                    double gptq = RelativeOutputError(aim, dq, hessian.Matrix);
                    results.Add(new GptqLayerResult(module.Path, q.QType, (q as WeightQBitsTensor)?.GroupSize,
                        hessian.Samples, rtn, gptq, watch.Elapsed));
                }
            }
        }
        catch
        {
            foreach ((QModule _, QuantizedWeight w, Tensor dq) in built)
            {
                w.Dispose();
                dq.Dispose();
            }
            throw;
        }
        foreach ((QModule module, QuantizedWeight weight, Tensor dq) in built)
        {
            dq.Dispose();
            module.LoadQuantizedWeight(weight);
        }
        return new GptqReport(results, skipped);
    }

    private static string? GptqRefusal(QModule module) => module switch
    {
        { WeightQType: null } => "its weights stay float",
        { WeightQType: QType q } when q.Info().IsFloat => $"GPTQ rounds to an integer grid; {q.QuantoName()} is cast",
        { IsFrozen: true } => "already frozen: GPTQ needs the float weight (run it before Freeze)",
        QConv2d { groups: > 1 } => "a grouped convolution (GPTQ here handles groups = 1)",
        QLinear or QConv2d => null,
        _ => $"{module.GetType().Name} has no GPTQ input rule (Linear and Conv2d do)",
    };

    private static SkippedModuleInfo Skip(QModule module, string why) =>
        new(module.Path, module.GetType().Name, why);

    /// <summary>Plain rounding of the float weight, measured against GPTQ's aim (the float weight, or the
    /// asymmetric target).</summary>
    private static double RoundToNearestError(QModule module, Tensor weight, Tensor aim, Tensor hessian)
    {
        using QuantizedWeight rtn = WeightQuantizer.Quantize(weight, module.WeightQType!.Value, module.GroupSize,
            module.Optimizer);
        using Tensor dq = rtn.Dequantize();
        return RelativeOutputError(aim, dq, hessian);
    }

    /// <summary>What GPTQ rounds: the float weight, or under asymmetric calibration the target W* (see
    /// <see cref="GptqTarget"/>), in the weight's shape and dtype.</summary>
    private static Tensor Aim(GptqTarget? target, Tensor weight, GptqHessian hessian, double damping)
    {
        if (target is null) return weight.detach();
        using Tensor star = target.Weight(weight, hessian.Matrix, damping);
        return star.view(weight.shape).to(weight.dtype, copy: true);
    }

    /// <summary>For asymmetric calibration: one pass with every layer float again, keeping the inputs of
    /// <paramref name="module"/>; the quantized layers get their GPTQ weights back afterwards.</summary>
    private static GptqTarget FloatInputs(ModuleProbe probe, Func<Tensor> calibrationPass, QModule module, long d,
        List<(QModule Module, QuantizedWeight Weight, Tensor Dequantized)> built)
    {
        var target = new GptqTarget(module, d, module.FloatWeight!.device);
        try
        {
            foreach ((QModule done, _, _) in built) probe.SetWeight(done, null);
            probe.Run(calibrationPass, (m, x) =>
            {
                if (ReferenceEquals(m, module)) target.AddFloatInput(x);
            }).Dispose();
            return target;
        }
        catch
        {
            target.Dispose();
            throw;
        }
        finally
        {
            foreach ((QModule done, _, Tensor dq) in built) probe.SetWeight(done, dq);
        }
    }

    /// <summary>tr(Δ H Δᵀ) / tr(W H Wᵀ): the squared output error on the calibration inputs relative to the
    /// output's energy, Δ = W - Wq.</summary>
    internal static double RelativeOutputError(Tensor weight, Tensor quantized, Tensor hessian)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        long rows = weight.shape[0];
        Tensor w = weight.detach().reshape(rows, -1).to(ScalarType.Float32);
        Tensor delta = w.sub(quantized.reshape(rows, -1).to(ScalarType.Float32));
        Tensor h = hessian.to(ScalarType.Float32);
        double error = delta.mm(h).mul_(delta).sum().to(ScalarType.Float64).item<double>();
        double energy = w.mm(h).mul_(w).sum().to(ScalarType.Float64).item<double>();
        return energy > 0 ? error / energy : 0;
    }
}

/// <summary>One layer quantized by GPTQ.</summary>
/// <param name="Path">Module path.</param>
/// <param name="QType">Weight qtype.</param>
/// <param name="GroupSize">Group size of a 2/4-bit weight (null for int8).</param>
/// <param name="Samples">Calibration input rows (tokens, or convolution patches) in its Hessian.</param>
/// <param name="RoundToNearestError">Relative output error on those inputs of plain rounding with the module's
/// optimizer.</param>
/// <param name="GptqError">The same for GPTQ.</param>
/// <param name="Time">Time for this layer (its pass included).</param>
public sealed record GptqLayerResult(string Path, QType QType, int? GroupSize, long Samples,
    double RoundToNearestError, double GptqError, TimeSpan Time);

/// <summary>What <see cref="Quantizer.Gptq(IEnumerable{QModule}, Func{Tensor}, GptqOptions?,
/// IProgress{QuantizationProgress}?)"/> did.</summary>
/// <param name="Layers">Layers quantized, in pass order.</param>
/// <param name="Skipped">Modules left as they were, with the reason.</param>
public sealed record GptqReport(IReadOnlyList<GptqLayerResult> Layers, IReadOnlyList<SkippedModuleInfo> Skipped)
{
    /// <inheritdoc />
    public override string ToString()
    {
        var lines = new List<string> { $"GPTQ: {Layers.Count} layer(s) quantized, {Skipped.Count} skipped" };
        lines.AddRange(Layers.Select(l => string.Create(CultureInfo.InvariantCulture,
            $"  {l.Path}: {l.QType.QuantoName()}{(l.GroupSize is int g ? $" g{g}" : "")}, {l.Samples} rows, " +
            $"output error {l.RoundToNearestError:E2} -> {l.GptqError:E2}, {l.Time.TotalSeconds:F1} s")));
        lines.AddRange(Skipped.Select(s => $"  {s.Path}: skipped: {s.Reason}"));
        return string.Join(Environment.NewLine, lines);
    }
}
