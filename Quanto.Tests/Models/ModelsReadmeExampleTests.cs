using NUnit.Framework;
using Quanto.Models.Generation;
using Quanto.Models.Llama;
using Quanto.Models.Tokenizers;
using Quanto.Tests.TestSupport;
using Quanto.TinyLlama;

namespace Quanto.Tests.Models;

/// <summary>The README's Quanto.Models example, verbatim but for the folder names, so it keeps compiling and
/// running (on a tiny checkpoint with a character-level SentencePiece tokenizer).</summary>
public sealed class ModelsReadmeExampleTests : TempFolderTests
{
    [Test]
    public void QuantizeSaveReloadGenerateExampleRuns()
    {
        string source = Path.Combine(Folder, "TinyLlama-1.1B"), saved = Path.Combine(Folder, "TinyLlama-1.1B-w4");
        HfFiles.Write(source, TinyLlama.Config(), TinyLlama.Weights());
        var characters = "The capital of France is".Replace(' ', SentencePieceModel.WordStart).Distinct()
            .Select((c, i) => (c.ToString(), -1f - i));
        File.WriteAllBytes(Path.Combine(source, HfTokenizers.SentencePieceFile), SentencePieceModel.Build(characters));
        var printed = new StringWriter();
        Console.SetOut(printed);

        // --- README: Quanto.Models ---
        using Llama model = Llama.FromHuggingFace(source);         // config.json + model.safetensors (or shards)
        model.Quantize(weights: QType.QInt4);                       // exclude defaults to ["lm_head"]; frozen
        model.SavePretrained(saved);                                // model.safetensors, quanto_qmap.json, config.json
        using Llama reloaded = Llama.FromPretrained(saved);         // no float weights built for quantized layers
        var tokenizer = HfTokenizers.Llama(source);                 // tokenizer.model (SentencePiece)
        string text = reloaded.GenerateText(tokenizer, "The capital of France is",
            new GenerationOptions { MaxNewTokens = 32, Temperature = 0.7, TopP = 0.9, Seed = 42 }, Console.Write);
        // --- end ---

        Console.SetOut(new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = true });
        Assert.That(printed.ToString(), Is.EqualTo(text), "streamed pieces add up to the text");
        Assert.That(Quantizer.QuantizedModules(reloaded).Count(), Is.EqualTo(TinyLlama.Layers * 7));
        Assert.That(text, Is.Not.Empty);
    }
}
