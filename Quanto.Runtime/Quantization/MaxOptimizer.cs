using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>
/// Affine scale = (max - min) / (2^bits - 1), shift = -min per group (optimum-quanto's MaxOptimizer). Two guards
/// optimum-quanto lacks: a zero-range group gets scale 1 (w is then reproduced exactly through the shift), and in
/// zero-point mode the range is widened to include 0 so the zero-point fits in [0, 2^bits - 1].
/// </summary>
public sealed class MaxOptimizer : AffineOptimizer
{
    /// <inheritdoc />
    public override (Tensor Scale, Tensor Shift) Optimize(Tensor grouped, QType qtype, ShiftMode shiftMode)
    {
        using var scope = NewDisposeScope();
        Tensor rmin = grouped.amin([1], keepdim: true);
        Tensor rmax = grouped.amax([1], keepdim: true);
        if (shiftMode == ShiftMode.ZeroPoint)
        {
            rmin = rmin.clamp_max(0);
            rmax = rmax.clamp_min(0);
        }
        Tensor scale = rmax.sub(rmin).div(qtype.Info().MaxCode);
        scale = scale.masked_fill(scale.eq(0), 1.0);
        Tensor shift = rmin.neg();
        return (scale.MoveToOuterDisposeScope(), shift.MoveToOuterDisposeScope());
    }
}
