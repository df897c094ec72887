using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;
using Quanto.Serialization;

namespace Quanto.Models.Tokenizers;

/// <summary>
/// Tokenizers for checkpoint folders, through Microsoft.ML.Tokenizers 2.0.1. Supported files: BERT's WordPiece
/// <c>vocab.txt</c> (with <c>do_lower_case</c> from <c>tokenizer_config.json</c> when present, else lower-casing), and
/// Llama / Mistral's SentencePiece <c>tokenizer.model</c> (BPE). A folder with only a fast-tokenizer
/// <c>tokenizer.json</c> (Llama 3, Qwen2) is refused: that library reads no tokenizer.json.
/// </summary>
public static class HfTokenizers
{
    /// <summary>BERT's vocabulary file.</summary>
    public const string VocabFile = "vocab.txt";

    /// <summary>SentencePiece's model file.</summary>
    public const string SentencePieceFile = "tokenizer.model";

    /// <summary>The WordPiece tokenizer of a BERT checkpoint folder.</summary>
    /// <exception cref="QuantoFormatException">No vocab.txt, or a malformed tokenizer_config.json.</exception>
    public static BertTokenizer Bert(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        string vocab = Path.Combine(folder, VocabFile);
        if (!File.Exists(vocab))
        {
            throw new QuantoFormatException(folder,
                $"no {VocabFile}: a BERT tokenizer is read from its WordPiece vocabulary.");
        }
        bool lowerCase = ReadFlag(folder, "do_lower_case") ?? true;
        return BertTokenizer.Create(vocab, new BertOptions { LowerCaseBeforeTokenization = lowerCase });
    }

    /// <summary>The SentencePiece tokenizer of a Llama-family checkpoint folder (adds the begin-of-sentence token).
    /// </summary>
    /// <exception cref="QuantoFormatException">No tokenizer.model (the message says what the folder has instead).
    /// </exception>
    public static Tokenizer Llama(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        string model = Path.Combine(folder, SentencePieceFile);
        if (!File.Exists(model))
        {
            string found = File.Exists(Path.Combine(folder, "tokenizer.json"))
                ? " The folder has tokenizer.json (a fast tokenizer), which Microsoft.ML.Tokenizers 2.0.1 cannot read."
                : "";
            throw new QuantoFormatException(folder,
                $"no {SentencePieceFile}: Llama tokenizers are read from SentencePiece models.{found}");
        }
        using FileStream stream = File.OpenRead(model);
        return LlamaTokenizer.Create(stream, addBeginOfSentence: true, addEndOfSentence: false);
    }

    private static bool? ReadFlag(string folder, string name)
    {
        string path = Path.Combine(folder, "tokenizer_config.json");
        if (!File.Exists(path)) return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) is JsonObject o && o[name] is JsonValue v &&
                   v.TryGetValue(out bool flag)
                ? flag
                : null;
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new QuantoFormatException(path, $"not valid JSON: {e.Message}", e);
        }
    }
}
