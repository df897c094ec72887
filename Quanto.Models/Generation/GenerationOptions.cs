namespace Quanto.Models.Generation;

/// <summary>How to generate: how many tokens, when to stop, and how to pick each token.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to generate (the prompt not counted). Default 128.</summary>
    public int MaxNewTokens { get; init; } = 128;

    /// <summary>0 (the default): greedy, the most likely token each step. Above 0: sample from
    /// softmax(logits / temperature) after the top-k and top-p filters.</summary>
    public double Temperature { get; init; }

    /// <summary>Sample among the k most likely tokens only (0: no limit).</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus sampling: the smallest set of most likely tokens whose probability reaches p (1: all).
    /// </summary>
    public double TopP { get; init; } = 1;

    /// <summary>Seed of the sampler: the same seed, prompt and model give the same tokens. Null: a random seed.
    /// </summary>
    public int? Seed { get; init; }

    /// <summary>Tokens that end generation (included in the output). Null: the config's eos_token_id(s).</summary>
    public IReadOnlyCollection<long>? StopTokens { get; init; }

    /// <summary>Checks the values.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A negative token count, temperature or top-k, or a top-p
    /// outside (0, 1].</exception>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(MaxNewTokens);
        if (Temperature < 0 || double.IsNaN(Temperature))
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "Temperature must be >= 0.");
        ArgumentOutOfRangeException.ThrowIfNegative(TopK);
        if (!(TopP > 0 && TopP <= 1))
            throw new ArgumentOutOfRangeException(nameof(TopP), TopP, "TopP must be in (0, 1].");
    }
}

/// <summary>Why generation ended.</summary>
public enum StopReason
{
    /// <summary>A stop token was generated.</summary>
    StopToken,

    /// <summary><see cref="GenerationOptions.MaxNewTokens"/> tokens were generated.</summary>
    MaxTokens,

    /// <summary>The sequence reached max_position_embeddings.</summary>
    ContextFull,
}

/// <summary>What one generation produced.</summary>
/// <param name="Tokens">The generated tokens (not the prompt), a stop token included.</param>
/// <param name="Reason">Why it ended.</param>
/// <param name="PrefillSeconds">Time of the prompt's forward pass.</param>
/// <param name="DecodeSeconds">Time of the token-by-token passes.</param>
public sealed record GenerationResult(IReadOnlyList<long> Tokens, StopReason Reason, double PrefillSeconds,
    double DecodeSeconds);
