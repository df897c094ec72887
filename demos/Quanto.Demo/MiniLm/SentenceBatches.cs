namespace Quanto.Demo.MiniLm;

/// <summary>
/// A corpus tokenized once into batches of similar length (sentence-transformers' encode sorts by length too, so
/// little padding is computed), with the way back to corpus order.
/// </summary>
internal sealed class SentenceBatches
{
    private readonly int[][] _members;

    public SentenceBatches(SentenceTokenizer tokenizer, IReadOnlyList<string> sentences, int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        // Longest first, ties in corpus order: deterministic.
        int[] order = Enumerable.Range(0, sentences.Count)
            .OrderByDescending(i => tokenizer.Ids(sentences[i]).Count).ThenBy(i => i).ToArray();
        _members = order.Chunk(batchSize).ToArray();
        Batches = _members.Select(m => tokenizer.Encode(m.Select(i => sentences[i]).ToList())).ToArray();
        Count = sentences.Count;
    }

    /// <summary>The batches, longest sentences first.</summary>
    public IReadOnlyList<TokenBatch> Batches { get; }

    /// <summary>Sentences in the corpus.</summary>
    public int Count { get; }

    /// <summary>Every sentence's embedding, [Count, hidden] in corpus order.</summary>
    public float[] EmbedAll(ISentenceEncoder encoder)
    {
        float[]? all = null;
        int width = 0;
        for (int b = 0; b < Batches.Count; b++)
        {
            float[] rows = encoder.Embed(Batches[b]);
            width = rows.Length / Batches[b].Count;
            all ??= new float[Count * width];
            for (int r = 0; r < _members[b].Length; r++)
                rows.AsSpan(r * width, width).CopyTo(all.AsSpan(_members[b][r] * width, width));
        }
        return all ?? [];
    }
}
