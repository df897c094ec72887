namespace Quanto.Models;

/// <summary>
/// When the models call libtorch's fused scaled_dot_product_attention instead of matmul, softmax, matmul: only for
/// score matrices of at least <see cref="MinScores"/> elements. There it avoids writing and re-reading the scores
/// (BERT attention at batch 32 x 32 tokens ran 2.8x faster in a micro-benchmark); below it, the plain ops run on the
/// calling thread while the fused CPU kernel always opens a parallel region over batch x heads, whose thread wake-up
/// costs more than the small matmuls it replaces (one decode token, one short sentence).
/// </summary>
internal static class FusedAttention
{
    /// <summary>batch x heads x queries x keys from which the fused kernel is used.</summary>
    internal const long MinScores = 1 << 16;

    /// <summary>Whether a score matrix of <paramref name="scores"/> elements takes the fused kernel.</summary>
    internal static bool Pays(long scores) => scores >= MinScores;
}
