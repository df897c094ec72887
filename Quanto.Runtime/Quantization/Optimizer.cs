using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>Chooses quantization parameters for a weight. See <see cref="SymmetricOptimizer"/> and
/// <see cref="AffineOptimizer"/>.</summary>
public abstract class Optimizer
{
    /// <summary>The default optimizer for a qtype: Absmax for 8-bit types, Max for 2/4-bit (as optimum-quanto).</summary>
    public static Optimizer DefaultFor(QType qtype) =>
        qtype.Info().IsPacked ? new MaxOptimizer() : new AbsmaxOptimizer();

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
