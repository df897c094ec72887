using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>Chooses quantization parameters for a weight. See <see cref="SymmetricOptimizer"/> and
/// <see cref="AffineOptimizer"/>.</summary>
public abstract class Optimizer
{
    /// <summary>
    /// The default optimizer for a qtype: <see cref="AbsmaxOptimizer"/> for 8-bit types (as optimum-quanto); for
    /// 2/4-bit types <see cref="HqqOptimizer"/> with a float shift and <see cref="MaxOptimizer"/> with a zero-point
    /// (HQQ refines a float shift). optimum-quanto's default for 2/4-bit weights is Max; HQQ is ours because it
    /// measured better on real weights (README, "Accuracy algorithms": all-MiniLM-L6-v2 int4 g128 mean cosine 0.959
    /// against Max's 0.948). Pass <c>new MaxOptimizer()</c> for the codes, scales and shifts optimum-quanto's
    /// default writes; both give files in optimum-quanto's layout (HQQ's result is an ordinary scale and shift).
    /// </summary>
    /// <param name="qtype">The weight qtype.</param>
    /// <param name="shiftMode">How a 2/4-bit quantization stores its offset.</param>
    public static Optimizer DefaultFor(QType qtype, ShiftMode shiftMode = ShiftMode.Float) =>
        qtype.Info().IsPacked ? DefaultAffine(shiftMode) : new AbsmaxOptimizer();

    /// <summary><see cref="DefaultFor"/> for 2/4-bit types.</summary>
    internal static AffineOptimizer DefaultAffine(ShiftMode shiftMode = ShiftMode.Float) =>
        shiftMode == ShiftMode.Float ? new HqqOptimizer() : new MaxOptimizer();

    /// <inheritdoc />
    public override string ToString() => GetType().Name;
}

/// <summary>Chooses the per-axis scale of a symmetric (int8, float8) quantization.</summary>
public abstract class SymmetricOptimizer : Optimizer
{
    /// <summary>The scale, shaped like <paramref name="weight"/> with 1 in every dimension but
    /// <paramref name="axis"/>, in the weight's dtype, strictly positive.</summary>
    public abstract Tensor Optimize(Tensor weight, QType qtype, int axis);
}

/// <summary>Chooses scale and float shift of a group-wise affine (int2, int4) quantization.</summary>
public abstract class AffineOptimizer : Optimizer
{
    /// <summary>
    /// Scale and float shift per row of <paramref name="grouped"/> (groups, group size), each (groups, 1) in its
    /// dtype, with dequant = q * scale - shift. Scales are strictly positive.
    /// </summary>
    /// <param name="grouped">The weight viewed as one group per row.</param>
    /// <param name="qtype">qint2 or qint4.</param>
    /// <param name="shiftMode">The shift representation that will be stored (a zero-point needs zero in range).</param>
    public abstract (Tensor Scale, Tensor Shift) Optimize(Tensor grouped, QType qtype, ShiftMode shiftMode);
}

/// <summary>How an affine quantization stores its offset.</summary>
public enum ShiftMode
{
    /// <summary>A float shift in the weight dtype: w = q * scale - shift (optimum-quanto's default for weights).</summary>
    Float,

    /// <summary>A uint8 zero-point: w = (q - zeropoint) * scale.</summary>
    ZeroPoint,
}
