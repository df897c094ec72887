using NUnit.Framework;
using Quanto.Demo.MiniLm;
using Quanto.Demo.MiniLm.Onnx;
using Quanto.Tests.TestSupport;

namespace Quanto.Tests.Demo;

/// <summary>The MiniLM demo's parts that need no model: the protobuf reader on hand-encoded bytes, the corpus rules,
/// the metrics against hand-computed values, and the WordPiece batches against the vocabulary's own line numbers.
/// </summary>
[TestFixture]
public sealed class MiniLmPartsTests : TempFolderTests
{
    [Test]
    public void ProtoReaderDecodesEveryWireType()
    {
        // field 1 varint 300 (AC 02), field 2 "hi", field 3 fixed32 7, field 4 fixed64 9, field 5 packed [1, 150]
        byte[] message =
        [
            0x08, 0xAC, 0x02, 0x12, 0x02, (byte)'h', (byte)'i', 0x1D, 7, 0, 0, 0, 0x21, 9, 0, 0, 0, 0, 0, 0, 0,
            0x2A, 0x03, 0x01, 0x96, 0x01,
        ];
        List<ProtoField> fields = ProtoReader.Fields(message);
        Assert.That(fields.Select(f => f.Number), Is.EqualTo(new[] { 1, 2, 3, 4, 5 }));
        Assert.That(fields[0].Value, Is.EqualTo(300));
        Assert.That(ProtoReader.Text(fields[1]), Is.EqualTo("hi"));
        Assert.That(fields[2].Value, Is.EqualTo(7));
        Assert.That(fields[3].Value, Is.EqualTo(9));
        Assert.That(ProtoReader.Int64s(fields, 5), Is.EqualTo(new long[] { 1, 150 }));
    }

    [Test]
    public void ProtoReaderRejectsTruncatedMessages()
    {
        var e = Assert.Throws<InvalidDataException>(() => ProtoReader.Fields(new byte[] { 0x12, 0x05, 1, 2 }));
        Assert.That(e!.Message, Does.Contain("truncated"));
        Assert.Throws<InvalidDataException>(() => OnnxModel.Parse(new byte[] { 0x08, 0x01 }, "x.onnx"));
    }

    [Test]
    public void MetricsMatchHandComputedValues()
    {
        // Ranks with a tie: 10 -> 1, 20 and 20 -> 2.5, 30 -> 4.
        Assert.That(EmbeddingMetrics.Ranks([20, 10, 30, 20]), Is.EqualTo(new[] { 2.5, 1, 4, 2.5 }));
        Assert.That(EmbeddingMetrics.Pearson([1, 2, 3], [2, 4, 7]), Is.EqualTo(0.9933992677987828).Within(1e-12));

        // Three 2-d unit vectors; the candidate turns the third by 90 degrees.
        float s = MathF.Sqrt(0.5f);
        float[] reference = [1, 0, s, s, 0, 1];
        float[] candidate = [1, 0, s, s, 1, 0];
        EmbeddingMetrics m = EmbeddingMetrics.Compare(reference, candidate, 2);
        Assert.That(m.MinCosine, Is.EqualTo(0).Within(1e-7));
        Assert.That(m.MeanCosine, Is.EqualTo(2 / 3.0).Within(1e-7));
        // Nearest neighbours: reference 0->1, 1->0 (0.707 ties 2; lowest index), 2->1; candidate 0->2 (cos 1),
        // 1->0, 2->0: only sentence 1 keeps its neighbour.
        Assert.That(m.NeighbourAgreement, Is.EqualTo(1 / 3.0).Within(1e-12));
        // Pairs (0,1), (0,2), (1,2): reference 0.707, 0, 0.707 -> ranks 2.5, 1, 2.5; candidate 0.707, 1, 0.707 ->
        // ranks 1.5, 3, 1.5: Pearson of the ranks is -1.
        Assert.That(m.Spearman, Is.EqualTo(-1).Within(1e-9));
        EmbeddingMetrics same = EmbeddingMetrics.Compare(reference, reference, 2);
        Assert.That(new[] { same.MeanCosine, same.MinCosine, same.NeighbourAgreement, same.Spearman },
            Is.All.EqualTo(1).Within(1e-12));
    }

    [Test]
    public void AptDescriptionsAreTheDistinctEnglishShortDescriptionsInOrder()
    {
        const string dump = "Package: b\nDescription: Slide and add puzzle game\n more text\n\n" +
                            "Package: a\nDescription: A real-time strategy game of ancient warfare\n\n" +
                            "Package: c\nDescription: Slide and add puzzle game\n\n" +
                            "Package: d\nDescription: too short\nDescription-md5: 0\n\n" +
                            "Package: e\nDescription: Nicht englisch: Größe und Länge\n";
        Assert.That(Corpus.AptDescriptions(dump),
            Is.EqualTo(new[] { "A real-time strategy game of ancient warfare", "Slide and add puzzle game" }));
    }

    [Test]
    public void LicenceSentencesSplitAtSentenceEndsAndDropFragments()
    {
        File.WriteAllText(Path.Combine(Folder, "B"), "Short one. The second file repeats this long enough sentence.");
        File.WriteAllText(Path.Combine(Folder, "A"),
            "This is the first sentence of the text.\nIt continues here; Then a clause follows it here.\n" +
            "The second file repeats this long enough sentence.");
        // Files in name order; "It continues here;" and "Short one." have under six words; B's sentence repeats A's.
        Assert.That(Corpus.LicenceSentences(Folder), Is.EqualTo(new[]
        {
            "This is the first sentence of the text.", "Then a clause follows it here.",
            "The second file repeats this long enough sentence.",
        }));
    }

    [Test]
    public void CorpusMixesBothSourcesAndHoldsOutDisjointCalibration()
    {
        string[] apt = Enumerable.Range(0, 1000).Select(i => $"apt description number {i:D4} here").ToArray();
        string[] licences = Enumerable.Range(0, 700).Select(i => $"licence sentence number {i:D4} here").ToArray();
        Corpus mixed = Corpus.Build(apt, licences, 512, 64);
        Assert.That(mixed.Sentences, Has.Count.EqualTo(512));
        Assert.That(mixed.Calibration, Has.Count.EqualTo(64));
        Assert.That(mixed.Sentences.Count(s => s.StartsWith("apt", StringComparison.Ordinal)), Is.EqualTo(256));
        Assert.That(mixed.Calibration.Count(s => s.StartsWith("apt", StringComparison.Ordinal)), Is.EqualTo(32));
        Assert.That(mixed.Sentences.Intersect(mixed.Calibration), Is.Empty);
        Assert.That(mixed.Sentences.Distinct().Count(), Is.EqualTo(512));
        // Spread over the whole list, not its head.
        Assert.That(mixed.Sentences, Does.Contain(licences[0]).And.Contains(apt[0]));
        Assert.That(mixed.Sentences.Where(s => s.StartsWith("apt", StringComparison.Ordinal)).Max(),
            Is.GreaterThan("apt description number 0950"));
        Assert.That(mixed.Source, Does.StartWith("256 apt package descriptions (of 1000)"));

        Corpus licencesOnly = Corpus.Build([], licences, 512, 64);
        Assert.That(licencesOnly.Sentences, Has.Count.EqualTo(512));
        Assert.That(licencesOnly.Sentences.Intersect(licencesOnly.Calibration), Is.Empty);
        Assert.That(licencesOnly.Source, Does.Contain("no apt package data"));
        var e = Assert.Throws<InvalidOperationException>(() => Corpus.Build([], licences.Take(300).ToArray(), 512,
            64));
        Assert.That(e!.Message, Does.Contain("apt-get update").And.Contain("300"));
    }

    [Test]
    public void ThisMachineHasTheCorpus()
    {
        Corpus corpus = Corpus.Load();
        Assert.That(corpus.Sentences, Has.Count.EqualTo(Corpus.DefaultSize), corpus.Source);
        Assert.That(corpus.Sentences.Intersect(corpus.Calibration), Is.Empty);
        Assert.That(Corpus.Load().Sentences, Is.EqualTo(corpus.Sentences), "deterministic");
    }

    [Test]
    public void TokenBatchesFollowTheVocabulary()
    {
        using Stream vocabStream = MiniLmPackage.Vocabulary();
        string[] vocab = new StreamReader(vocabStream).ReadToEnd().Split('\n').Select(l => l.TrimEnd('\r'))
            .ToArray();
        int Id(string token) => Array.IndexOf(vocab, token);
        using Stream again = MiniLmPackage.Vocabulary();
        var tokenizer = new SentenceTokenizer(again);
        TokenBatch batch = tokenizer.Encode(["Hello, World!", "hello"]);
        Assert.That(batch.Count, Is.EqualTo(2));
        Assert.That(batch.Length, Is.EqualTo(6));
        long[] expected = [Id("[CLS]"), Id("hello"), Id(","), Id("world"), Id("!"), Id("[SEP]"),
            Id("[CLS]"), Id("hello"), Id("[SEP]"), Id("[PAD]"), Id("[PAD]"), Id("[PAD]")];
        Assert.That(batch.Ids, Is.EqualTo(expected));
        Assert.That(batch.Mask, Is.EqualTo(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0 }));
        Assert.That(batch.TypeIds, Is.All.EqualTo(0));
        Assert.That(batch.Tokens, Is.EqualTo(9));

        IReadOnlyList<int> longest = tokenizer.Ids(string.Join(' ', Enumerable.Repeat("word", 500)));
        Assert.That(longest, Has.Count.EqualTo(SentenceTokenizer.MaxTokens));
        Assert.That(longest[^1], Is.EqualTo(Id("[SEP]")));
    }
}
