using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>
/// Half-Quadratic Quantization (optimum-quanto's HqqOptimizer): keeps <see cref="MaxOptimizer"/>'s scale and refines
/// the float shift by alternating an lp-shrinkage of the error with a closed-form shift update. As optimum-quanto's
/// hqq_optimizer.py, it stops at the first step whose mean |W - Wq| does not improve and returns the last shift that
/// did (never worse than Max's). One difference: the stopping test runs per block of groups (the quantizer works in
/// row blocks to bound memory) rather than over the whole tensor.
/// </summary>
/// <param name="lpNorm">Norm of the sparsity-promoting penalty (0.7).</param>
/// <param name="beta">Initial penalty weight (10).</param>
/// <param name="kappa">Growth of beta per iteration (1.01).</param>
/// <param name="iterations">Maximum iterations (20).</param>
public sealed class HqqOptimizer(double lpNorm = 0.7, double beta = 10, double kappa = 1.01, int iterations = 20)
    : AffineOptimizer
{
    /// <summary>Norm of the penalty.</summary>
    public double LpNorm { get; } = lpNorm;

    /// <summary>Initial penalty weight.</summary>
    public double Beta { get; } = beta;

    /// <summary>Growth of beta per iteration.</summary>
    public double Kappa { get; } = kappa;

    /// <summary>Maximum iterations.</summary>
    public int Iterations { get; } = iterations;

    /// <inheritdoc />
    /// <exception cref="ArgumentException">Zero-point mode was asked for: HQQ refines a float shift.</exception>
    public override (Tensor Scale, Tensor Shift) Optimize(Tensor grouped, QType qtype, ShiftMode shiftMode)
    {
        if (shiftMode != ShiftMode.Float)
        {
            throw new ArgumentException(
                "HqqOptimizer refines a float shift; use ShiftMode.Float, or MaxOptimizer for zero-points.",
                nameof(shiftMode));
        }
        using var scope = NewDisposeScope();
        using var threads = TorchThreads.For(grouped);
        (Tensor scale, Tensor shift) = new MaxOptimizer().Optimize(grouped, qtype, shiftMode);
        int maxCode = qtype.Info().MaxCode;
        Tensor codes = AffineQuantizer.Codes(grouped, scale, shift, maxCode).to(grouped.dtype);
        Tensor dequantized = codes.mul(scale).sub(shift);
        double bestError = grouped.sub(dequantized).abs().mean().to(ScalarType.Float32).item<float>();
        Tensor bestShift = shift;
        double b = Beta;
        for (int i = 0; i < Iterations; i++)
        {
            Tensor shrunk = Shrink(grouped.sub(dequantized), b);
            shift = codes.mul(scale).sub(grouped).add(shrunk).mean([1], keepdim: true);
            b *= Kappa;
            codes = AffineQuantizer.Codes(grouped, scale, shift, maxCode).to(grouped.dtype);
            dequantized = codes.mul(scale).sub(shift);
            double error = grouped.sub(dequantized).abs().mean().to(ScalarType.Float32).item<float>();
            if (error >= bestError) break;
            bestError = error;
            bestShift = shift;
        }
        return (scale.MoveToOuterDisposeScope(), bestShift.MoveToOuterDisposeScope());
    }

    // sign(x) * relu(|x| - |x|^(p-1) / beta): the proximal operator of the lp penalty.
    private Tensor Shrink(Tensor x, double b)
    {
        Tensor magnitude = x.abs();
        Tensor threshold = LpNorm == 1
            ? full_like(magnitude, 1 / b)
            : magnitude.add(1e-8).pow(LpNorm - 1).div(b);
        return x.sign().mul(magnitude.sub(threshold).relu());
    }
}
