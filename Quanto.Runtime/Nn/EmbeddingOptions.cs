using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Nn;

/// <summary>
/// The construction options of a TorchSharp <see cref="Embedding"/>. TorchSharp 0.107's Embedding is a native
/// module that keeps padding_idx, max_norm, scale_grad_by_freq and sparse in its libtorch options with no getter, so
/// <see cref="Read"/> finds them by running the module once on a probe table.
/// </summary>
/// <param name="PaddingIdx">The row that receives no gradient (normalized to [0, rows)), or null.</param>
/// <param name="MaxNorm">True when looked-up rows are renormalized in place (max_norm).</param>
/// <param name="ScaleGradByFreq">True when gradients are scaled by the inverse index frequency.</param>
/// <param name="Sparse">True when the weight gradient is a sparse tensor.</param>
internal sealed record EmbeddingOptions(long? PaddingIdx, bool MaxNorm, bool ScaleGradByFreq, bool Sparse)
{
    // Every p-norm of a one-element row is |v|: with v this large, any finite max_norm renormalizes the row (an
    // overflowing norm renormalizes it to 0), so a changed output means max_norm is set.
    private const double ProbeValue = 1e300;

    /// <summary>
    /// Runs <paramref name="embedding"/> on a (rows, 1) float64 probe table put in place of its weight (then
    /// restored), looking up every row twice: max_norm changes the probe's values; in the gradient the padding row
    /// gets 0, the others 2 (1 with scale_grad_by_freq); sparse makes it a sparse tensor. The module's own weight is
    /// never read or written. Not safe while another thread runs the module.
    /// </summary>
    /// <param name="embedding">The module.</param>
    /// <param name="weight">Its weight, the Parameter that is put back.</param>
    public static EmbeddingOptions Read(Embedding embedding, Parameter weight)
    {
        long rows = weight.shape[0];
        using var scope = NewDisposeScope();
        using var grad = enable_grad();
        var probe = new Parameter(full([rows, 1], ProbeValue, ScalarType.Float64));
        Tensor output, gradient;
        embedding.weight = probe;
        try
        {
            Tensor indices = arange(rows).repeat(2);
            output = embedding.forward(indices);
            output.sum().backward();
            gradient = probe.grad ?? throw new InvalidOperationException(
                "The embedding probe received no gradient; cannot tell this Embedding's options.");
        }
        finally
        {
            embedding.weight = weight;
        }
        bool sparse = gradient.is_sparse;
        double[] perRow = (sparse ? gradient.to_dense() : gradient).reshape(rows).data<double>().ToArray();
        long padding = Array.IndexOf(perRow, 0.0);
        bool maxNorm = output.ne(ProbeValue).any().item<bool>();
        bool byFrequency = perRow.Any(g => g == 1.0);
        return new EmbeddingOptions(padding < 0 ? null : padding, maxNorm, byFrequency, sparse);
    }
}
