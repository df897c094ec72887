using Microsoft.ML.Tokenizers;
using static TorchSharp.torch;

namespace Quanto.Models.Bert;

public sealed partial class Bert
{
    /// <summary>
    /// Sentence embeddings (count, hidden) of texts: WordPiece tokens with [CLS] ... [SEP], truncated to
    /// <paramref name="maxTokens"/> (default 128, or max_position_embeddings when smaller), padded to the longest in
    /// the batch, then <see cref="SentenceEmbeddings"/>.
    /// </summary>
    /// <exception cref="ArgumentException">No texts, or maxTokens below 2 or above max_position_embeddings.
    /// </exception>
    public Tensor EmbedSentences(BertTokenizer tokenizer, IReadOnlyList<string> texts, int? maxTokens = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(texts);
        if (texts.Count == 0) throw new ArgumentException("No texts to embed.", nameof(texts));
        int limit = maxTokens ?? (int)Math.Min(128, Config.MaxPositionEmbeddings);
        if (limit < 2 || limit > Config.MaxPositionEmbeddings)
        {
            throw new ArgumentOutOfRangeException(nameof(maxTokens), limit,
                $"maxTokens must be in [2, {Config.MaxPositionEmbeddings}].");
        }
        var rows = texts.Select(t => tokenizer.EncodeToIds(t, limit, addSpecialTokens: true, out _, out _))
            .ToList();
        int length = rows.Max(r => r.Count);
        var ids = new long[rows.Count, length];
        var mask = new long[rows.Count, length];
        for (int r = 0; r < rows.Count; r++)
        {
            for (int c = 0; c < length; c++)
            {
                bool token = c < rows[r].Count;
                ids[r, c] = token ? rows[r][c] : tokenizer.PaddingTokenId;
                mask[r, c] = token ? 1 : 0;
            }
        }
        using Tensor idTensor = tensor(ids), maskTensor = tensor(mask);
        return SentenceEmbeddings(idTensor, maskTensor);
    }
}
