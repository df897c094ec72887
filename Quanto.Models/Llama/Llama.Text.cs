using System.Text;
using Microsoft.ML.Tokenizers;
using Quanto.Models.Generation;

namespace Quanto.Models.Llama;

public sealed partial class Llama
{
    /// <summary>
    /// Generates a continuation of <paramref name="prompt"/> as text, streaming each new piece of text to
    /// <paramref name="onText"/> as tokens are chosen (the generated tokens are decoded together each step, so
    /// SentencePiece's word-start markers become spaces correctly).
    /// </summary>
    /// <returns>The generated text (the prompt not included).</returns>
    public string GenerateText(Tokenizer tokenizer, string prompt, GenerationOptions? options = null,
        Action<string>? onText = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(prompt);
        long[] ids = tokenizer.EncodeToIds(prompt).Select(i => (long)i).ToArray();
        var generated = new List<int>();
        var text = new StringBuilder();
        Generate(ids, options, token =>
        {
            generated.Add(checked((int)token));
            string decoded = tokenizer.Decode(generated);
            if (decoded.Length <= text.Length || !decoded.StartsWith(text.ToString(), StringComparison.Ordinal))
                return; // an incomplete character (byte-fallback piece): wait for the rest
            string piece = decoded[text.Length..];
            text.Append(piece);
            onText?.Invoke(piece);
        }, cancellationToken);
        return tokenizer.Decode(generated);
    }
}
