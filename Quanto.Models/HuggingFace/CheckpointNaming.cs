namespace Quanto.Models.HuggingFace;

/// <summary>
/// How a model's state-dict keys relate to a checkpoint's: the file keys that may hold each model key (transformers
/// saves a bare BertModel as "encoder.layer.0...", a BertForMaskedLM as "bert.encoder.layer.0..."), the file keys a
/// model knows it does not use (a task head, a rotary inv_freq buffer), and model keys filled in another way (a tied
/// lm_head).
/// </summary>
/// <param name="Candidates">File keys to try for a model key, in order.</param>
/// <param name="Ignorable">True for a file key the model deliberately does not load (listed in the report).</param>
/// <param name="NotLoaded">Model keys that are not read from the file.</param>
public sealed record CheckpointNaming(
    Func<string, IEnumerable<string>> Candidates,
    Func<string, bool> Ignorable,
    IReadOnlySet<string> NotLoaded)
{
    /// <summary>File keys equal model keys; nothing ignored.</summary>
    public static CheckpointNaming Identity { get; } =
        new(key => [key], _ => false, new HashSet<string>(StringComparer.Ordinal));
}
