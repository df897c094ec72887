using Quanto.Models.Llama;
using static TorchSharp.torch;

namespace Quanto.TinyLlama;

/// <summary>Perplexity on held-out tokens: exp of the mean next-token negative log-likelihood over fixed windows.
/// </summary>
internal static class Evaluation
{
    internal static double Perplexity(Llama model, long[] tokens, int window)
    {
        using var noGrad = no_grad();
        double total = 0;
        long count = 0;
        for (int start = 0; start + window + 1 <= tokens.Length; start += window)
        {
            using var scope = NewDisposeScope();
            Tensor ids = tensor(tokens.AsSpan(start, window + 1).ToArray()).unsqueeze(0);
            Tensor logits = model.forward(ids.narrow(1, 0, window), null).to(ScalarType.Float32);
            Tensor nll = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]),
                ids.narrow(1, 1, window).reshape(-1), reduction: nn.Reduction.Sum);
            total += nll.item<float>();
            count += window;
        }
        return Math.Exp(total / count);
    }
}
