using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>Symmetric scale = max |w| / qmax per index of the axis (optimum-quanto's AbsmaxOptimizer).
/// All-zero slices get scale 1 instead of optimum-quanto's 0 (which divides 0/0 into NaN).</summary>
public sealed class AbsmaxOptimizer : SymmetricOptimizer
{
    /// <inheritdoc />
    public override Tensor Optimize(Tensor weight, QType qtype, int axis)
    {
        using var scope = NewDisposeScope();
        long[] dims = Enumerable.Range(0, (int)weight.dim()).Where(d => d != axis).Select(d => (long)d).ToArray();
        Tensor absmax = weight.abs().amax(dims, keepdim: true);
        Tensor scale = absmax.div(qtype.Info().QMax);
        return scale.masked_fill(scale.eq(0), 1.0).MoveToOuterDisposeScope();
    }
}
