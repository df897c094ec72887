using NUnit.Framework;
using Quanto.Models.Bert;
using Quanto.Models.Tokenizers;
using Quanto.Serialization;
using Quanto.Tests.TestSupport;
using Quanto.TinyLlama;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

public sealed class TokenizerTests : TempFolderTests
{
    private static readonly string[] Vocab =
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "token", "##izer", "##s", ",", "!"];

    [Test]
    public void BertWordPieceFromVocabTxt()
    {
        File.WriteAllLines(Path.Combine(Folder, HfTokenizers.VocabFile), Vocab);
        var tokenizer = HfTokenizers.Bert(Folder);
        // Hand-tokenized: lower-cased, [CLS] hello , world ! [SEP]; "tokenizers" = token ##izer ##s.
        Assert.That(tokenizer.EncodeToIds("Hello, World!"), Is.EqualTo(new[] { 2, 5, 10, 6, 11, 3 }));
        Assert.That(tokenizer.EncodeToIds("tokenizers"), Is.EqualTo(new[] { 2, 7, 8, 9, 3 }));
    }

    [Test]
    public void BertEmbedSentencesPadsAndMasks()
    {
        HfFiles.Write(Folder, TinyBert.Config(), TinyBert.Weights());
        File.WriteAllLines(Path.Combine(Folder, HfTokenizers.VocabFile), Vocab);
        using Bert model = Bert.FromHuggingFace(Folder);
        var tokenizer = HfTokenizers.Bert(Folder);

        using Tensor embedded = model.EmbedSentences(tokenizer, ["hello world", "tokenizers!"]);
        using Tensor first = model.SentenceEmbeddings(tensor(new long[,] { { 2, 5, 6, 3 } }),
            ones(1, 4, dtype: ScalarType.Int64));
        using Tensor second = model.SentenceEmbeddings(tensor(new long[,] { { 2, 7, 8, 9, 11, 3 } }),
            ones(1, 6, dtype: ScalarType.Int64));
        Assert.That(Reference.Values(embedded[0]), Is.EqualTo(Reference.Values(first[0])).Within(1e-6));
        Assert.That(Reference.Values(embedded[1]), Is.EqualTo(Reference.Values(second[0])).Within(1e-6));
    }

    [Test]
    public void LlamaSentencePieceFromTokenizerModel()
    {
        char w = SentencePieceModel.WordStart;
        // Pieces 3..: single characters, then merges in priority order (higher score first).
        (string, float)[] pieces =
        [
            ($"{w}", -10), ("t", -11), ("h", -12), ("e", -13), ("c", -14), ("a", -15),
            ($"{w}t", -1), ("he", -2), ($"{w}the", -3), ("at", -4), ($"{w}c", -5), ($"{w}cat", -6),
        ];
        File.WriteAllBytes(Path.Combine(Folder, HfTokenizers.SentencePieceFile), SentencePieceModel.Build(pieces));
        var tokenizer = HfTokenizers.Llama(Folder);
        // Hand-applied BPE on "▁the▁cat": ▁t + he -> ▁the; a + t -> at, ▁c + at -> ▁cat; <s> first.
        int the = 3 + 8, cat = 3 + 11;
        Assert.That(tokenizer.EncodeToIds("the cat"), Is.EqualTo(new[] { 1, the, cat }));
        Assert.That(tokenizer.Decode([1, the, cat]), Is.EqualTo("the cat"));
    }

    [Test]
    public void MissingTokenizerFilesAreNamed()
    {
        File.WriteAllText(Path.Combine(Folder, "tokenizer.json"), "{}");
        var e = Assert.Throws<QuantoFormatException>(() => HfTokenizers.Llama(Folder))!;
        Assert.That(e.Message, Does.Contain("no tokenizer.model"));
        Assert.That(e.Message, Does.Contain("tokenizer.json (a fast tokenizer), which Microsoft.ML.Tokenizers 2.0.1"));
        Assert.Throws<QuantoFormatException>(() => HfTokenizers.Bert(Folder));
    }
}
