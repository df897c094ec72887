using System.Diagnostics;
using System.Runtime.CompilerServices;
using Quanto.Models.Generation;
using static TorchSharp.torch;

namespace Quanto.Models.Llama;

public sealed partial class Llama
{
    /// <summary>
    /// Generates tokens after <paramref name="prompt"/>: one forward pass over the prompt fills the KV cache
    /// (prefill), then one pass per new token (decode). Each token is handed to <paramref name="onToken"/> as soon
    /// as it is chosen. Runs on the calling thread, without gradients, batch 1.
    /// </summary>
    /// <param name="prompt">Prompt token ids (at least one).</param>
    /// <param name="options">Length, stop tokens and sampling (default: greedy, 128 tokens, eos stops).</param>
    /// <param name="onToken">Called with each generated token, or null.</param>
    /// <param name="cancellationToken">Checked before every forward pass.</param>
    /// <exception cref="ArgumentException">An empty prompt, ids outside the vocabulary, or a prompt longer than
    /// max_position_embeddings.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public GenerationResult Generate(IReadOnlyList<long> prompt, GenerationOptions? options = null,
        Action<long>? onToken = null, CancellationToken cancellationToken = default)
    {
        var tokens = new List<long>();
        using Session session = Start(prompt, options);
        foreach (long token in session.Tokens(cancellationToken))
        {
            tokens.Add(token);
            onToken?.Invoke(token);
        }
        return new GenerationResult(tokens, session.Reason, session.PrefillSeconds, session.DecodeSeconds);
    }

    /// <summary>
    /// <see cref="Generate"/> as an asynchronous stream: each token is yielded as soon as it is chosen (the
    /// forward passes run on the thread that awaits the next token).
    /// </summary>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public async IAsyncEnumerable<long> GenerateAsync(IReadOnlyList<long> prompt, GenerationOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using Session session = Start(prompt, options);
        foreach (long token in session.Tokens(cancellationToken))
        {
            yield return token;
            await Task.Yield(); // let the consumer's continuation run between tokens
        }
    }

    private Session Start(IReadOnlyList<long> prompt, GenerationOptions? options)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        options ??= new GenerationOptions();
        options.Validate();
        if (prompt.Count == 0) throw new ArgumentException("The prompt needs at least one token.", nameof(prompt));
        if (prompt.Count > Config.MaxPositionEmbeddings)
        {
            throw new ArgumentException(
                $"The prompt has {prompt.Count} tokens; max_position_embeddings is {Config.MaxPositionEmbeddings}.",
                nameof(prompt));
        }
        return new Session(this, prompt, options);
    }

    /// <summary>One generation: the cache, the sampler, the timings.</summary>
    private sealed class Session(Llama model, IReadOnlyList<long> prompt, GenerationOptions options) : IDisposable
    {
        private readonly KvCache _cache = model.NewCache(prompt.Count + options.MaxNewTokens);
        private readonly TokenSampler _sampler = new(options);
        private readonly HashSet<long> _stops = [.. options.StopTokens ?? model.Config.EosTokenIds];

        public StopReason Reason { get; private set; } = StopReason.MaxTokens;

        public double PrefillSeconds { get; private set; }

        public double DecodeSeconds { get; private set; }

        public IEnumerable<long> Tokens(CancellationToken cancellationToken)
        {
            long[] input = [.. prompt];
            for (int produced = 0; produced < options.MaxNewTokens; produced++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (_cache.Length + input.Length > model.Config.MaxPositionEmbeddings)
                {
                    Reason = StopReason.ContextFull;
                    yield break;
                }
                long started = Stopwatch.GetTimestamp();
                long token = NextToken(input);
                double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
                if (produced == 0) PrefillSeconds = seconds;
                else DecodeSeconds += seconds;
                yield return token;
                if (_stops.Contains(token))
                {
                    Reason = StopReason.StopToken;
                    yield break;
                }
                input = [token];
            }
        }

        private long NextToken(long[] input)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            Tensor ids = tensor(input, dtype: ScalarType.Int64).unsqueeze(0);
            Tensor logits = model.LastLogits(ids, _cache);
            Tensor last = logits[0, -1].to(ScalarType.Float32).contiguous();
            return _sampler.Next(last.data<float>().ToArray());
        }

        public void Dispose() => _cache.Dispose();
    }
}
