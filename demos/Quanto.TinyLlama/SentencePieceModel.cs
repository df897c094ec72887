using System.Text;

namespace Quanto.TinyLlama;

/// <summary>
/// Writes a SentencePiece BPE model file (<c>tokenizer.model</c>, the protobuf ModelProto that Llama checkpoints
/// ship) from a list of pieces, so the demo's tokenizer is read the way a real Llama's is (Microsoft.ML.Tokenizers'
/// LlamaTokenizer). Pieces 0, 1, 2 are &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;; a higher score merges first.
/// </summary>
internal static class SentencePieceModel
{
    /// <summary>SentencePiece's word-start marker (U+2581), which stands for a space.</summary>
    internal const char WordStart = '\u2581';

    private const int Normal = 1, Unknown = 2, Control = 3, Bpe = 2;

    /// <summary>The file bytes for <paramref name="pieces"/> (text, score), after the three special pieces.</summary>
    internal static byte[] Build(IEnumerable<(string Piece, float Score)> pieces)
    {
        var model = new MemoryStream();
        WriteMessage(model, 1, Piece("<unk>", 0, Unknown));
        WriteMessage(model, 1, Piece("<s>", 0, Control));
        WriteMessage(model, 1, Piece("</s>", 0, Control));
        foreach ((string piece, float score) in pieces) WriteMessage(model, 1, Piece(piece, score, Normal));

        var trainer = new MemoryStream(); // TrainerSpec: model_type BPE, unk 0, bos 1, eos 2, no pad
        WriteVarintField(trainer, 3, Bpe);
        WriteVarintField(trainer, 40, 0);
        WriteVarintField(trainer, 41, 1);
        WriteVarintField(trainer, 42, 2);
        WriteVarintField(trainer, 43, unchecked((ulong)-1L));
        WriteMessage(model, 2, trainer.ToArray());

        var normalizer = new MemoryStream(); // NormalizerSpec: identity, dummy prefix, spaces escaped as U+2581
        WriteBytesField(normalizer, 1, Encoding.UTF8.GetBytes("identity"));
        WriteVarintField(normalizer, 3, 1);
        WriteVarintField(normalizer, 4, 1);
        WriteVarintField(normalizer, 5, 1);
        WriteMessage(model, 3, normalizer.ToArray());
        return model.ToArray();
    }

    private static byte[] Piece(string text, float score, int type)
    {
        var piece = new MemoryStream();
        WriteBytesField(piece, 1, Encoding.UTF8.GetBytes(text));
        WriteTag(piece, 2, 5); // fixed32 float
        piece.Write(BitConverter.GetBytes(score));
        WriteVarintField(piece, 3, (ulong)type);
        return piece.ToArray();
    }

    private static void WriteMessage(Stream s, int field, byte[] message) => WriteBytesField(s, field, message);

    private static void WriteBytesField(Stream s, int field, byte[] bytes)
    {
        WriteTag(s, field, 2);
        WriteVarint(s, (ulong)bytes.Length);
        s.Write(bytes);
    }

    private static void WriteVarintField(Stream s, int field, ulong value)
    {
        WriteTag(s, field, 0);
        WriteVarint(s, value);
    }

    private static void WriteTag(Stream s, int field, int wireType) => WriteVarint(s, (ulong)(field << 3 | wireType));

    private static void WriteVarint(Stream s, ulong value)
    {
        while (value >= 0x80)
        {
            s.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        s.WriteByte((byte)value);
    }
}
