using NUnit.Framework;
using Quanto.Serialization;
using Quanto.Tests.Serialization;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Cli;

/// <summary>
/// The CLI's embedding rule on a float checkpoint of a real TorchSharp model (token table, Conv1d, Linear): tables
/// are told from Linear weights by name and kept float unless --embeddings; either way the output loads into the
/// model (Requantize) and runs as the eager path quantized the same way, bit for bit.
/// </summary>
public sealed class QuantizeEmbeddingTests : TempFolderTests
{
    [TestCase(false)]
    [TestCase(true)]
    public void TheOutputLoadsIntoTheModelAndMatchesTheEagerPath(bool embeddings)
    {
        string input = SaveFloat(seed: 0);
        string outFolder = Directory.CreateDirectory(Path.Combine(Folder, "out")).FullName;
        string output = Path.Combine(outFolder, "model.safetensors");
        string[] extra = embeddings ? ["--embeddings"] : [];
        var (code, stdout, stderr) = CliFixture.Run(["quantize", input, "-o", output, "-w", "qint4", .. extra]);
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, embeddings ? Does.Contain("embed_tokens.weight").And.Not.Contain("kept (embedding")
            : Does.Contain("kept (embedding (*embed*); see --embeddings)"));
        Assert.That(stdout, Does.Contain($"Quantized {(embeddings ? 3 : 2)} of"), "conv (3-D) and head always");

        using TokenModel eager = Seeded.Create(() => new TokenModel());
        Quantizer.Quantize(eager, weights: QType.QInt4, embeddings: embeddings);
        Quantizer.Freeze(eager);
        using TokenModel loaded = Seeded.Create(() => new TokenModel(), seed: 9);
        Quantizer.Requantize(loaded, output);
        Assert.That(loaded.named_modules().Select(m => m.module.GetType().Name), Is.EqualTo(
            new[] { embeddings ? "QEmbedding" : "Embedding", "QConv1d", "QLinear" }));
        using Tensor x = TokenModel.Input();
        Assert.That(ModelCompare.Output(loaded, x), Is.EqualTo(ModelCompare.Output(eager, x)));
    }

    [Test]
    public void AnotherNameIsMarkedWithEmbeddingAndAnUnmarkedTableStillLoads()
    {
        string input = SaveFloat(seed: 0, tableName: "lookup");
        string marked = Path.Combine(Folder, "marked.qnt");
        var (code, stdout, stderr) = CliFixture.Run("quantize", input, "-o", marked, "-w", "qint8", "--embedding",
            "look*");
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("kept (embedding (look*); see --embeddings)"));

        // Not marked: quantized as any 2-D weight; the model has an Embedding there, so it loads as a QEmbedding.
        string unmarked = Path.Combine(Folder, "unmarked.qnt");
        (code, _, stderr) = CliFixture.Run("quantize", input, "-o", unmarked, "-w", "qint8");
        Assert.That(code, Is.Zero, stderr);
        using TokenModel loaded = Seeded.Create(() => new TokenModel("lookup"), seed: 9);
        Quantizer.Requantize(loaded, unmarked);
        Assert.That(loaded.named_modules().First().module.GetType().Name, Is.EqualTo("QEmbedding"));
    }

    [Test]
    public void HelpExplainsTheRule()
    {
        var (code, stdout, _) = CliFixture.Run("quantize", "--help");
        Assert.That(code, Is.Zero);
        Assert.That(stdout, Does.Contain("--embeddings").And.Contain("--embedding PATTERN").And.Contain("*embed*")
            .And.Contain("3-D (Conv1d)"));
    }

    private string SaveFloat(long seed, string tableName = "embed_tokens")
    {
        using TokenModel model = Seeded.Create(() => new TokenModel(tableName), seed);
        string path = Path.Combine(Folder, "float.safetensors");
        Safetensors.Save(path, model.state_dict());
        return path;
    }

    /// <summary>A table (named as given) -> Conv1d(16, 8, 3) over the sequence -> mean -> head: Linear(8, 3).</summary>
    private sealed class TokenModel : Module<Tensor, Tensor>
    {
        private readonly Module<Tensor, Tensor> conv;
        private readonly Module<Tensor, Tensor> head;
        private readonly string _table;

        public TokenModel(string table = "embed_tokens") : base(nameof(TokenModel))
        {
            _table = table;
            register_module(table, Embedding(40, 16));
            conv = Conv1d(16, 8, 3, padding: 1);
            head = Linear(8, 3);
            RegisterComponents();
        }

        public static Tensor Input() => tensor(new long[] { 1, 39, 4, 4, 17, 0, 22, 8 }, [2, 4]);

        public override Tensor forward(Tensor x)
        {
            var table = (Module<Tensor, Tensor>)named_children().Single(c => c.name == _table).module;
            return head.forward(conv.forward(table.forward(x).transpose(1, 2)).mean([2]));
        }
    }
}
