using Microsoft.ML.Tokenizers;
using static TorchSharp.torch;

namespace Quanto.Demo.MiniLm;

/// <summary>
/// Sentences tokenized for a BERT encoder, padded to the longest one of the batch (as sentence-transformers does):
/// row-major [Count, Length] token ids, attention mask (1 real token, 0 padding) and token type ids (all 0: one
/// segment), as 64-bit integers, the dtype both libtorch's embedding and the ONNX graph take.
/// </summary>
internal sealed record TokenBatch(int Count, int Length, long[] Ids, long[] Mask, long[] TypeIds)
{
    /// <summary>Number of real (unpadded) tokens.</summary>
    public long Tokens => Mask.Sum();

    /// <summary>Token ids and attention mask as [Count, Length] int64 tensors, as the model takes them.</summary>
    public (Tensor Ids, Tensor Mask) Tensors()
    {
        long[] shape = [Count, Length];
        return (tensor(Ids, shape), tensor(Mask, shape));
    }
}

/// <summary>BERT WordPiece (Microsoft.ML.Tokenizers' BertTokenizer over the model's vocab.txt): lowercased, [CLS]
/// ... [SEP], truncated to <see cref="MaxTokens"/> as all-MiniLM-L6-v2's tokenizer does.</summary>
internal sealed class SentenceTokenizer
{
    /// <summary>Tokens per sentence, [CLS] and [SEP] included.</summary>
    public const int MaxTokens = 128;

    private readonly BertTokenizer _tokenizer;

    public SentenceTokenizer(Stream vocabulary)
    {
        _tokenizer = BertTokenizer.Create(vocabulary, new BertOptions { LowerCaseBeforeTokenization = true });
    }

    /// <summary>The ids of one sentence; a longer one keeps its first tokens and still ends with [SEP].</summary>
    public IReadOnlyList<int> Ids(string sentence) =>
        _tokenizer.EncodeToIds(sentence, MaxTokens, addSpecialTokens: true, out _, out _);

    /// <summary>Tokenizes and pads a batch.</summary>
    public TokenBatch Encode(IReadOnlyList<string> sentences)
    {
        ArgumentOutOfRangeException.ThrowIfZero(sentences.Count);
        IReadOnlyList<int>[] rows = sentences.Select(Ids).ToArray();
        int length = rows.Max(r => r.Count);
        var ids = new long[rows.Length * length];
        Array.Fill(ids, (long)_tokenizer.PaddingTokenId);
        var mask = new long[ids.Length];
        for (int i = 0; i < rows.Length; i++)
        {
            for (int j = 0; j < rows[i].Count; j++)
            {
                ids[(i * length) + j] = rows[i][j];
                mask[(i * length) + j] = 1;
            }
        }
        return new TokenBatch(rows.Length, length, ids, mask, new long[ids.Length]);
    }
}
