using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>
/// Affine scale and shift by a clipping search (GPTQ's mse option): for each group, shrink its range to
/// [r·min, r·max] for r from 1 down to <see cref="MinRatio"/> in <see cref="Steps"/> even steps, and keep the range
/// whose quantize-dequantize error Σ|w - q(w)|^p is smallest (p = 2.4, as GPTQ's implementation uses: a little above
/// 2 to weigh large errors more). Clipping a group's extreme weights buys finer steps for all the others. The
/// result is an ordinary scale and float shift (zero-point mode: the range is widened to include 0 as
/// <see cref="MaxOptimizer"/> does).
/// </summary>
/// <param name="minRatio">Smallest fraction of the range tried, in (0, 1].</param>
/// <param name="steps">Candidate ratios (at least 1).</param>
/// <param name="norm">Exponent of the error (2.4).</param>
public sealed class MseOptimizer(double minRatio = 0.75, int steps = 16, double norm = 2.4) : AffineOptimizer
{
    /// <summary>Smallest fraction of the range tried.</summary>
    public double MinRatio { get; } = minRatio > 0 && minRatio <= 1
        ? minRatio
        : throw new ArgumentOutOfRangeException(nameof(minRatio), minRatio, "The ratio lies in (0, 1].");

    /// <summary>Candidate ratios.</summary>
    public int Steps { get; } = steps >= 1
        ? steps
        : throw new ArgumentOutOfRangeException(nameof(steps), steps, "At least one step.");

    /// <summary>Exponent of the error.</summary>
    public double Norm { get; } = norm > 0
        ? norm
        : throw new ArgumentOutOfRangeException(nameof(norm), norm, "A positive exponent.");

    /// <inheritdoc />
    public override (Tensor Scale, Tensor Shift) Optimize(Tensor grouped, QType qtype, ShiftMode shiftMode)
    {
        using var scope = NewDisposeScope();
        int maxCode = qtype.Info().MaxCode;
        Tensor rmin = grouped.amin([1], keepdim: true), rmax = grouped.amax([1], keepdim: true);
        if (shiftMode == ShiftMode.ZeroPoint)
        {
            rmin = rmin.clamp_max(0);
            rmax = rmax.clamp_min(0);
        }
        Tensor bestScale = null!, bestShift = null!, bestError = null!;
        for (int i = 0; i < Steps; i++)
        {
            double ratio = Steps == 1 ? 1 : 1 - i * (1 - MinRatio) / (Steps - 1);
            Tensor low = rmin.mul(ratio), high = rmax.mul(ratio);
            Tensor scale = high.sub(low).div(maxCode);
            scale = scale.masked_fill(scale.eq(0), 1.0);
            Tensor shift = low.neg();
            Tensor codes = AffineQuantizer.Codes(grouped, scale, shift, maxCode).to(grouped.dtype);
            Tensor error = codes.mul(scale).sub(shift).sub(grouped).abs().pow(Norm).sum([1], keepdim: true);
            if (i == 0)
            {
                (bestScale, bestShift, bestError) = (scale, shift, error);
                continue;
            }
            Tensor better = error.lt(bestError);
            bestScale = where(better, scale, bestScale);
            bestShift = where(better, shift, bestShift);
            bestError = where(better, error, bestError);
        }
        return (bestScale.MoveToOuterDisposeScope(), bestShift.MoveToOuterDisposeScope());
    }
}
