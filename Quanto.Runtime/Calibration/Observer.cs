using Quanto.Quantization;
using static TorchSharp.torch;

namespace Quanto;

/// <summary>
/// Reduces one batch of activations to the magnitude its quantization scale is set from, and says how batches
/// combine. The default combination is optimum-quanto's momentum: the first batch a module sees sets its scale,
/// each later one blends <c>scale = m * scale + (1 - m) * observed / qmax</c>, so the scale is an exponential moving
/// average that mostly remembers the last ~1 / (1 - m) batches (10 at m = 0.9). That suits shuffled, representative
/// batches; for a stream whose loud and quiet parts come in runs, use <see cref="RunningMaxObserver"/>.
/// </summary>
public abstract class Observer
{
    /// <summary>The magnitude (>= 0) that should map to the qtype's largest value. NaN or infinity only if the
    /// batch holds them (calibration checks the batch first and reports it).</summary>
    public abstract double Observe(Tensor activations);

    /// <summary>The magnitude for activations quantized to <paramref name="qtype"/> (observers that weigh the
    /// rounding error need it; the default ignores it).</summary>
    public virtual double Observe(Tensor activations, QType qtype) => Observe(activations);

    /// <summary>Combines the scale so far with a new batch's scale (both already divided by qmax).</summary>
    /// <param name="previous">The module's scale before this batch.</param>
    /// <param name="observed">This batch's scale.</param>
    /// <param name="momentum">The calibration's momentum.</param>
    public virtual double Accumulate(double previous, double observed, double momentum) =>
        momentum * previous + (1 - momentum) * observed;
}

/// <summary>max |x| (optimum-quanto's calibration), combined with momentum.</summary>
public sealed class AbsmaxObserver : Observer
{
    /// <inheritdoc />
    public override double Observe(Tensor activations) => Absmax(activations);

    /// <summary>max |x| of a tensor as a double (NaN if it holds NaN).</summary>
    internal static double Absmax(Tensor activations)
    {
        using var scope = NewDisposeScope();
        return activations.detach().abs().max().to(ScalarType.Float64).item<double>();
    }
}

/// <summary>
/// Running range, streaming-safe: the scale covers the widest batch seen so far (PyTorch's MinMaxObserver, for a
/// symmetric per-tensor scale the larger of |min| and |max|). Momentum is ignored, so a quiet tail of a stream cannot
/// shrink the scale that its loud start needs. Wraps another per-batch statistic (max |x| by default, or e.g. a
/// percentile to keep single outliers out).
/// </summary>
/// <param name="batch">The per-batch statistic (default <see cref="AbsmaxObserver"/>).</param>
public sealed class RunningMaxObserver(Observer? batch = null) : Observer
{
    /// <summary>The per-batch statistic whose running maximum is kept.</summary>
    public Observer Batch { get; } = batch ?? new AbsmaxObserver();

    /// <inheritdoc />
    public override double Observe(Tensor activations) => Batch.Observe(activations);

    /// <inheritdoc />
    public override double Observe(Tensor activations, QType qtype) => Batch.Observe(activations, qtype);

    /// <inheritdoc />
    public override double Accumulate(double previous, double observed, double momentum) =>
        Math.Max(previous, observed);
}

/// <summary>
/// A percentile of |x| (e.g. 99.99): ignores the rare outliers that would otherwise stretch the scale and waste
/// resolution on every other value. Combined with momentum.
/// </summary>
public sealed class PercentileObserver : Observer
{
    /// <summary>Creates an observer for the given percentile.</summary>
    /// <param name="percentile">In (0, 100]; 100 is absmax.</param>
    /// <exception cref="ArgumentOutOfRangeException">Outside (0, 100].</exception>
    public PercentileObserver(double percentile = 99.99)
    {
        if (!(percentile > 0 && percentile <= 100))
            throw new ArgumentOutOfRangeException(nameof(percentile), percentile, "A percentile lies in (0, 100].");
        Percentile = percentile;
    }

    /// <summary>The percentile of |x| observed.</summary>
    public double Percentile { get; }

    /// <inheritdoc />
    public override double Observe(Tensor activations)
    {
        using var scope = NewDisposeScope();
        Tensor magnitudes = activations.detach().abs().flatten().to(ScalarType.Float32);
        long n = magnitudes.shape[0];
        if (n == 0) return 0;
        long k = Math.Clamp((long)Math.Ceiling(Percentile / 100 * n), 1, n);
        return magnitudes.kthvalue(k, 0, false).values.to(ScalarType.Float64).item<double>();
    }
}

/// <summary>
/// MSE-optimal clipping: of the clipping ranges c = r * max |x| for r = 1, 1 - 1/steps, ..., <see cref="MinRatio"/>,
/// the one whose quantize-dequantize error mean((x - q(x))^2) is smallest for the module's activation qtype.
/// Clipping a few large values buys finer steps for all the others; this finds the balance per batch. Batches are
/// subsampled to at most 2^20 values (an even stride) to bound the search. Combined with momentum.
/// </summary>
/// <param name="minRatio">Smallest fraction of max |x| tried, in (0, 1].</param>
/// <param name="steps">Number of candidate ratios between 1 and <paramref name="minRatio"/> (at least 1).</param>
public sealed class MseObserver(double minRatio = 0.3, int steps = 35) : Observer
{
    private const long MaxValues = 1L << 20;

    /// <summary>Smallest fraction of max |x| tried.</summary>
    public double MinRatio { get; } = minRatio > 0 && minRatio <= 1
        ? minRatio
        : throw new ArgumentOutOfRangeException(nameof(minRatio), minRatio, "The ratio lies in (0, 1].");

    /// <summary>Number of candidate ratios.</summary>
    public int Steps { get; } = steps >= 1
        ? steps
        : throw new ArgumentOutOfRangeException(nameof(steps), steps, "At least one step.");

    /// <summary>Without a qtype, the search assumes int8.</summary>
    public override double Observe(Tensor activations) => Observe(activations, QType.QInt8);

    /// <inheritdoc />
    public override double Observe(Tensor activations, QType qtype)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor x = activations.detach().flatten().to(ScalarType.Float32);
        if (x.shape[0] > MaxValues) x = x.slice(0, 0, x.shape[0], (x.shape[0] + MaxValues - 1) / MaxValues);
        double absmax = x.abs().max().to(ScalarType.Float64).item<double>();
        if (!(absmax > 0) || double.IsInfinity(absmax)) return absmax;
        double qmax = qtype.Info().QMax;
        double best = absmax, bestError = double.PositiveInfinity;
        for (int i = 0; i < Steps; i++)
        {
            double ratio = Steps == 1 ? 1 : 1 - i * (1 - MinRatio) / (Steps - 1);
            using Tensor scale = tensor(absmax * ratio / qmax, ScalarType.Float32);
            using Tensor codes = SymmetricQuantizer.QuantizeValues(x, qtype, scale);
            using Tensor error = codes.to(ScalarType.Float32).mul_(scale).sub_(x).pow_(2).mean();
            double e = error.to(ScalarType.Float64).item<double>();
            if (e < bestError)
            {
                bestError = e;
                best = absmax * ratio;
            }
        }
        return best;
    }
}
