using static TorchSharp.torch;

namespace Quanto;

/// <summary>Reduces one batch of activations to the magnitude its quantization scale is set from.</summary>
public abstract class Observer
{
    /// <summary>The magnitude (>= 0) that should map to the qtype's largest value.</summary>
    public abstract double Observe(Tensor activations);
}

/// <summary>max |x| (optimum-quanto's calibration).</summary>
public sealed class AbsmaxObserver : Observer
{
    /// <inheritdoc />
    public override double Observe(Tensor activations)
    {
        using var scope = NewDisposeScope();
        return activations.detach().abs().max().to(ScalarType.Float64).item<double>();
    }
}

/// <summary>
/// A percentile of |x| (e.g. 99.99): ignores the rare outliers that would otherwise stretch the scale and waste
/// resolution on every other value.
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
