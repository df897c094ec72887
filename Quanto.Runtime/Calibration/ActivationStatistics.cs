using System.Globalization;
using Quanto.Nn;
using static TorchSharp.torch;

namespace Quanto;

/// <summary>What a calibration warns about.</summary>
public enum CalibrationWarningKind
{
    /// <summary>The per-batch range of an activation varied by more than 10x: a momentum average follows the last
    /// batches and clips the loud ones (the streaming case).</summary>
    RangeVaries,

    /// <summary>An activation's typical values span only a few int8 steps, because a few values are far larger (the
    /// LayerNorm-input case: a residual sum whose peak is ~100x its mean |x|).</summary>
    CoarseSteps,
}

/// <summary>One warning of a calibration, naming the module and what to do.</summary>
/// <param name="Module">The module's path.</param>
/// <param name="Kind">What is wrong.</param>
/// <param name="Message">The module, the measured numbers, and the remedies.</param>
public sealed record CalibrationWarning(string Module, CalibrationWarningKind Kind, string Message)
{
    /// <inheritdoc />
    public override string ToString() => Message;
}

/// <summary>
/// The per-module bookkeeping of one calibration: checks each batch (NaN or infinity is an error naming the module
/// and the batch, and leaves the scale as it was), updates the scale through the observer, and keeps the range
/// statistics the warnings are made from.
/// </summary>
internal sealed class ActivationStatistics
{
    /// <summary>A batch whose max |x| is more than this many times another's makes a
    /// <see cref="CalibrationWarningKind.RangeVaries"/> warning.</summary>
    internal const double RangeVariesRatio = 10;

    /// <summary>Fewer int8 steps than this in the mean |x| of an activation make a
    /// <see cref="CalibrationWarningKind.CoarseSteps"/> warning (a Gaussian batch's mean |x| spans ~25 steps; a
    /// LayerNorm input peaking at 100x its mean |x| spans about 1).</summary>
    internal const double CoarseSteps = 4;

    private readonly Dictionary<(QModule Module, bool Input), Side> _sides = [];
    private readonly List<(QModule Module, bool Input)> _order = [];

    /// <summary>Checks a batch and folds it into the module's input or output scale.</summary>
    /// <exception cref="InvalidOperationException">The batch holds NaN or infinite values.</exception>
    internal void Observe(QModule module, Tensor activations, bool input, Observer observer, double momentum)
    {
        QType qtype = module.ActivationQType!.Value;
        if (!_sides.TryGetValue((module, input), out Side? side))
        {
            side = new Side();
            _sides[(module, input)] = side;
            _order.Add((module, input));
        }
        side.Batches++;
        (double absmax, double meanAbs) = Summary(activations);
        if (!double.IsFinite(absmax) || !double.IsFinite(meanAbs))
            throw NonFinite(module, activations, input, side.Batches);
        double magnitude = observer.Observe(activations, qtype);
        if (!(magnitude > 0)) return; // an all-zero batch says nothing about the range
        side.Add(absmax, meanAbs);
        double fresh = magnitude / qtype.Info().QMax;
        bool calibrated = input ? module.InputCalibrated : module.OutputCalibrated;
        double previous = (input ? module.input_scale : module.output_scale).item<float>();
        module.SetCalibratedScale(input, calibrated ? observer.Accumulate(previous, fresh, momentum) : fresh);
    }

    /// <summary>The warnings about what was observed, in the order modules were first seen.</summary>
    internal IReadOnlyList<CalibrationWarning> Warnings(Observer observer)
    {
        var warnings = new List<CalibrationWarning>();
        foreach ((QModule module, bool input) in _order)
        {
            Side side = _sides[(module, input)];
            // An output streamlining left float (it feeds only float ops) is never rounded: nothing to warn about.
            if (side.Observed == 0 || !input && !module.OutputQuantized) continue;
            string what = $"{module.Describe()} {(input ? "input" : "output")}";
            double scale = (input ? module.input_scale : module.output_scale).item<float>();
            QType qtype = module.ActivationQType!.Value;
            if (side.Observed > 1 && side.LargestAbsmax > RangeVariesRatio * side.SmallestAbsmax)
            {
                string remedy = observer is RunningMaxObserver
                    ? "The scale covers the loudest batch, so the quiet ones use few steps: if they matter, " +
                      "calibrate on them separately or use float8 activations."
                    : "For streams or uneven data calibrate with `observer: new RunningMaxObserver()` (the scale " +
                      "then covers every batch), a lower momentum, or batches that represent the whole input.";
                warnings.Add(new CalibrationWarning(module.Path, CalibrationWarningKind.RangeVaries,
                    $"{what}: max |x| varied {F(side.LargestAbsmax / side.SmallestAbsmax)}x between its " +
                    $"{side.Observed} batches ({F(side.SmallestAbsmax)} .. {F(side.LargestAbsmax)}); the scale " +
                    $"{F(scale)} covers |x| <= {F(scale * qtype.Info().QMax)}. {remedy}"));
            }
            double steps = side.MeanAbs / scale;
            if (qtype == QType.QInt8 && steps < CoarseSteps)
            {
                string exclude = $"exclude it (exclude: [\"{module.Path}\"])";
                string remedy = module is QLayerNorm
                    ? $"{exclude} or use float8 activations (QFloat8E4M3Fn), whose steps follow the magnitude"
                    : "keep its int8 weights and leave its activations float (exclude it here, then " +
                      $"Quantizer.Quantize(model, QInt8, include: [\"{module.Path}\"]); with DynamicActivations = " +
                      "Int8 it also runs the int8 kernels, on a range per token), use float8 activations " +
                      "(QFloat8E4M3Fn), or smooth it (SmoothQuant moves the outliers into the weights)";
                warnings.Add(new CalibrationWarning(module.Path, CalibrationWarningKind.CoarseSteps,
                    $"{what}: max |x| {F(side.LargestAbsmax)} is {F(side.LargestAbsmax / side.MeanAbs)}x the " +
                    "mean |x| " +
                    $"{F(side.MeanAbs)}, so the int8 step is {F(scale)} and typical values span only {F(steps)} " +
                    $"step(s): most round to a few codes. To keep accuracy, {remedy}."));
            }
        }
        return warnings;
    }

    private static (double Absmax, double MeanAbs) Summary(Tensor activations)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        if (activations.NumberOfElements == 0) return (0, 0);
        Tensor magnitudes = activations.detach().abs().to(ScalarType.Float64);
        double absmax = magnitudes.max().item<double>();
        double meanAbs = double.IsFinite(absmax) ? magnitudes.mean().item<double>() : double.NaN;
        return (absmax, meanAbs);
    }

    private static InvalidOperationException NonFinite(QModule module, Tensor activations, bool input, int batch)
    {
        using var scope = NewDisposeScope();
        Tensor x = activations.detach();
        long nan = x.isnan().sum().item<long>(), inf = x.isinf().sum().item<long>();
        string where = input
            ? "input (NaN or infinity in the data, or an overflow upstream)"
            : "output (its input was finite: the layer overflows, e.g. in Float16)";
        return new InvalidOperationException(
            $"{module.Describe()}: calibration batch {batch} holds {nan} NaN and {inf} infinite value(s) of " +
            $"{x.NumberOfElements} in its {where}. Its scale would become NaN or infinite, so the batch is refused " +
            $"and the scale keeps the value of the batches before it. Repair or drop that batch and calibrate again.");
    }

    private static string F(double value) => value.ToString("G3", CultureInfo.InvariantCulture);

    private sealed class Side
    {
        public int Batches { get; set; }

        public int Observed { get; private set; }

        public double SmallestAbsmax { get; private set; } = double.PositiveInfinity;

        public double LargestAbsmax { get; private set; }

        public double MeanAbs => _meanAbsSum / Observed;

        private double _meanAbsSum;

        public void Add(double absmax, double meanAbs)
        {
            Observed++;
            SmallestAbsmax = Math.Min(SmallestAbsmax, absmax);
            LargestAbsmax = Math.Max(LargestAbsmax, absmax);
            _meanAbsSum += meanAbs;
        }
    }
}
