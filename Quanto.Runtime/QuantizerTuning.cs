using System.Diagnostics;
using Quanto.Nn;
using Quanto.Quantization;
using Quanto.Tensors;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto;

public static partial class Quantizer
{
    /// <summary>
    /// <see cref="TuneScales(IEnumerable{QModule}, int, Func{int, Tensor}, ScaleTuningOptions?,
    /// IProgress{QuantizationProgress}?)"/> for a frozen eager model and the float model's outputs: the loss of batch
    /// i is the mean squared error of <c>model.forward(samples[i])</c> to <c>targets[i]</c>, relative to the mean
    /// square of the targets.
    /// </summary>
    /// <param name="model">The quantized, frozen model (eval mode).</param>
    /// <param name="samples">Calibration batches.</param>
    /// <param name="targets">The float model's output for each batch, same shapes as the model's outputs.</param>
    /// <param name="options">Tuning settings.</param>
    /// <param name="progress">Reports each epoch's progress.</param>
    /// <exception cref="ArgumentException">No batches, or not one target per batch.</exception>
    public static ScaleTuningReport TuneScales(nn.Module<Tensor, Tensor> model, IReadOnlyList<Tensor> samples,
        IReadOnlyList<Tensor> targets, ScaleTuningOptions? options = null,
        IProgress<QuantizationProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(samples);
        ArgumentNullException.ThrowIfNull(targets);
        if (samples.Count == 0) throw new ArgumentException("Give at least one calibration batch.", nameof(samples));
        if (targets.Count != samples.Count)
        {
            throw new ArgumentException(
                $"Give one target per batch: {samples.Count} batches, {targets.Count} targets.", nameof(targets));
        }
        return TuneScales(QuantizedModules(model), samples.Count, i => CheckedRelativeSquaredError(
            model.forward(samples[i]), targets[i], $"batch {i}"), options, progress);
    }

    /// <summary>
    /// Fine-tunes the float parts of frozen 2/4-bit weights, each group's scale and shift, by gradient descent
    /// (Adam, cosine decay) on a loss the caller computes from the model's output, typically the distance to the
    /// float model's output on calibration batches. The integer codes stay as rounding (or GPTQ) left them, so the
    /// result is the same optimum-quanto layout (packed codes, <c>_scale</c>, <c>_shift</c>) with other values and
    /// loads anywhere. Plain rounding picks each group's range alone; tuning lets the groups of all layers make up
    /// for each other's errors where the model's output shows them (as the learned clipping and scale refinement of
    /// OmniQuant and PEQA do).
    /// While it runs, every module of <paramref name="modules"/> computes in float with its dequantized weight
    /// (activations unquantized, as the other accuracy passes do), so gradients flow through the whole model; the
    /// tuned layers' weights are rebuilt each step from codes, scales and shifts. Memory: the tuned layers' codes as
    /// float32 (4 bytes a weight) besides the model, plus the pass's autograd graph.
    /// </summary>
    /// <param name="modules">Every quantized module of the model; the frozen 2/4-bit ones with a float shift are
    /// tuned, the others take part in float and are listed as skipped.</param>
    /// <param name="batches">Calibration batches; the loss is asked for each, <see cref="ScaleTuningOptions.Epochs"/>
    /// times over.</param>
    /// <param name="loss">Runs the model on batch i (0 ≤ i &lt; <paramref name="batches"/>) and returns a scalar
    /// loss, differentiable through the model (gradients are on while it runs).</param>
    /// <param name="options">Tuning settings.</param>
    /// <param name="progress">Reports each epoch's progress (stage "scale tuning").</param>
    /// <returns>The layers tuned, the loss before, during and after, and whether the result was kept.</returns>
    /// <exception cref="InvalidOperationException">No module can be tuned, a module is already being measured, or
    /// the loss is not a finite scalar (NaN or Inf: the weights are left as they were).</exception>
    public static ScaleTuningReport TuneScales(IEnumerable<QModule> modules, int batches, Func<int, Tensor> loss,
        ScaleTuningOptions? options = null, IProgress<QuantizationProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(modules);
        ArgumentNullException.ThrowIfNull(loss);
        ArgumentOutOfRangeException.ThrowIfLessThan(batches, 1);
        options ??= new ScaleTuningOptions();
        options.Check();
        var watch = Stopwatch.StartNew();
        List<QModule> all = modules.Distinct().ToList();
        var skipped = new List<SkippedModuleInfo>();
        var tuned = new List<TunedWeight>();
        var results = new List<(QModule Module, WeightQBitsTensor Weight)>();
        try
        {
            foreach (QModule module in all)
            {
                if (TuningRefusal(module) is string why) skipped.Add(Skip(module, why));
                else tuned.Add(new TunedWeight(module, (WeightQBitsTensor)module.QuantizedWeight!));
            }
            if (tuned.Count == 0)
            {
                throw new InvalidOperationException(
                    "Scale tuning found no frozen 2/4-bit weight with a float shift to tune: " +
                    string.Join("; ", skipped.Select(s => $"{s.Path}: {s.Reason}")) +
                    ". Quantize to qint2/qint4 and Freeze first.");
            }
            double initial, final;
            var epochLosses = new List<double>();
            using (ModuleProbe probe = ModuleProbe.Attach(all))
            {
                initial = MeanLoss(probe, tuned, batches, loss);
                Train(probe, tuned, batches, loss, options, epochLosses, progress);
                final = MeanLoss(probe, tuned, batches, loss);
            }
            bool kept = !options.KeepOnlyIfBetter || final < initial;
            if (kept) results.AddRange(tuned.Select(t => (t.Module, t.Result())));
            foreach ((QModule module, WeightQBitsTensor weight) in results) module.LoadQuantizedWeight(weight);
            return new ScaleTuningReport(tuned.Select(t => t.Module.Path).ToList(), skipped, initial, epochLosses,
                final, kept, watch.Elapsed);
        }
        catch
        {
            foreach ((QModule module, WeightQBitsTensor weight) in results)
            {
                if (!ReferenceEquals(module.QuantizedWeight, weight)) weight.Dispose();
            }
            throw;
        }
        finally
        {
            foreach (TunedWeight t in tuned) t.Dispose();
        }
    }

    private static string? TuningRefusal(QModule module) => module switch
    {
        { WeightQType: null } => "its weights stay float",
        { IsFrozen: false } => "not frozen: tuning adjusts a frozen weight's scales (run it after Freeze or GPTQ)",
        { QuantizedWeight: not WeightQBitsTensor } =>
            $"{module.WeightQType!.Value.QuantoName()} weights have no group-wise scale and shift to tune",
        { QuantizedWeight: WeightQBitsTensor { HasZeroPoint: true } } =>
            "its shift is a uint8 zero-point, which gradients cannot move",
        _ => null,
    };

    /// <summary>The steps: every batch once an epoch, the tuned weights rebuilt from their corrections each step.
    /// </summary>
    private static void Train(ModuleProbe probe, List<TunedWeight> tuned, int batches, Func<int, Tensor> loss,
        ScaleTuningOptions options, List<double> epochLosses, IProgress<QuantizationProgress>? progress)
    {
        List<Parameter> parameters = tuned.SelectMany(t => new[] { t.ScaleCorrection, t.ShiftCorrection }).ToList();
        using var optimizer = optim.Adam(parameters, options.LearningRate);
        long steps = (long)options.Epochs * batches, step = 0;
        for (int epoch = 0; epoch < options.Epochs; epoch++)
        {
            double sum = 0;
            for (int batch = 0; batch < batches; batch++, step++)
            {
                using var scope = NewDisposeScope();
                using var grad = enable_grad();
                // Cosine decay from the learning rate to zero over all the steps.
                double rate = options.LearningRate * 0.5 * (1 + Math.Cos(Math.PI * step / steps));
                foreach (var group in optimizer.ParamGroups) group.LearningRate = rate;
                optimizer.zero_grad();
                foreach (TunedWeight t in tuned) probe.SetWeight(t.Module, t.Weight());
                (Tensor value, double number) = LossOf(loss, batch);
                sum += number;
                value.backward();
                optimizer.step();
                foreach (TunedWeight t in tuned) probe.SetWeight(t.Module, null);
                progress?.Report(new QuantizationProgress("scale tuning", $"epoch {epoch + 1}", epoch,
                    options.Epochs, (batch + 1.0) / batches));
            }
            epochLosses.Add(sum / batches);
        }
    }

    /// <summary>The mean loss over the batches with the current corrections, without gradients.</summary>
    private static double MeanLoss(ModuleProbe probe, List<TunedWeight> tuned, int batches, Func<int, Tensor> loss)
    {
        using var noGrad = no_grad();
        using var weights = NewDisposeScope();
        foreach (TunedWeight t in tuned) probe.SetWeight(t.Module, t.Weight());
        double sum = 0;
        for (int batch = 0; batch < batches; batch++)
        {
            using var scope = NewDisposeScope();
            sum += LossOf(loss, batch).Number;
        }
        foreach (TunedWeight t in tuned) probe.SetWeight(t.Module, null);
        return sum / batches;
    }

    /// <summary>The caller's loss of one batch and its value, checked to be a finite scalar.</summary>
    private static (Tensor Value, double Number) LossOf(Func<int, Tensor> loss, int batch)
    {
        Tensor value = loss(batch) ?? throw new InvalidOperationException($"The loss of batch {batch} was null.");
        if (value.NumberOfElements != 1)
        {
            throw new InvalidOperationException(
                $"The loss of batch {batch} must be a scalar; got shape {QuantizedWeight.FormatShape(value.shape)}.");
        }
        double v = value.detach().to(ScalarType.Float64).item<double>();
        if (!double.IsFinite(v))
        {
            throw new InvalidOperationException(
                $"The loss of batch {batch} is {v}: scale tuning stopped and left the weights as they were. Check " +
                "the calibration batches for NaN/Inf, or lower ScaleTuningOptions.LearningRate.");
        }
        return (value, v);
    }

    /// <summary><see cref="RelativeSquaredError"/> after checking that the output and its target have one shape.
    /// </summary>
    private static Tensor CheckedRelativeSquaredError(Tensor output, Tensor target, string what)
    {
        if (!output.shape.SequenceEqual(target.shape))
        {
            throw new ArgumentException(
                $"The model's output for {what} has shape {QuantizedWeight.FormatShape(output.shape)}, its target " +
                $"{QuantizedWeight.FormatShape(target.shape)}.", nameof(target));
        }
        return RelativeSquaredError(output, target);
    }

    /// <summary>
    /// mean(w (output - target)²) / mean(w target²), differentiable in the output: the loss of the tuning passes
    /// that fit a float model's outputs. <paramref name="weights"/> (broadcast against the output; null: all 1)
    /// leaves out what it zeroes, e.g. padding tokens.
    /// </summary>
    internal static Tensor RelativeSquaredError(Tensor output, Tensor target, Tensor? weights = null)
    {
        Tensor t = target.to(output.dtype, output.device);
        Tensor error = output.sub(t).square(), energy = t.square();
        if (weights is not null)
        {
            Tensor w = weights.to(output.dtype, output.device);
            error = error.mul(w);
            energy = energy.mul(w);
        }
        return error.mean().div(energy.mean().clamp_min(1e-30));
    }
}
