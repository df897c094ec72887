using System.Diagnostics;
using Quanto.Models.Llama;
using static TorchSharp.torch;

namespace Quanto.TinyLlama;

/// <summary>Next-token training of a Llama on a token stream: random windows, AdamW, cosine learning rate, and a
/// progress bar with the running loss.</summary>
internal static class Training
{
    internal static void Train(Llama model, long[] tokens, int steps, int batch, int window, long seed)
    {
        var random = new Random((int)seed);
        var optimizer = optim.AdamW(model.parameters(), lr: 3e-3, weight_decay: 0.01);
        model.train();
        var clock = Stopwatch.StartNew();
        double smoothed = double.NaN;
        for (int step = 1; step <= steps; step++)
        {
            // Linear warm-up over the first tenth (at most 20 steps), then cosine decay.
            int warmup = Math.Clamp(steps / 10, 1, 20);
            double lr = 3e-3 * (step <= warmup
                ? (double)step / warmup
                : 0.5 * (1 + Math.Cos(Math.PI * (step - warmup) / Math.Max(1, steps - warmup))));
            foreach (var group in optimizer.ParamGroups) group.LearningRate = Math.Max(lr, 1e-4);
            using var scope = NewDisposeScope();
            var rows = new long[batch, window + 1];
            for (int b = 0; b < batch; b++)
            {
                int start = random.Next(tokens.Length - window - 1);
                for (int t = 0; t <= window; t++) rows[b, t] = tokens[start + t];
            }
            Tensor ids = tensor(rows);
            Tensor logits = model.forward(ids.narrow(1, 0, window), null);
            Tensor loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]),
                ids.narrow(1, 1, window).reshape(-1));
            optimizer.zero_grad();
            loss.backward();
            nn.utils.clip_grad_norm_(model.parameters(), 1.0);
            optimizer.step();
            double value = loss.item<float>();
            smoothed = double.IsNaN(smoothed) ? value : 0.9 * smoothed + 0.1 * value;
            Progress(step, steps, smoothed, clock.Elapsed);
        }
        Console.WriteLine();
        model.eval();
    }

    private static void Progress(int step, int steps, double loss, TimeSpan elapsed)
    {
        const int width = 30;
        int filled = step * width / steps;
        TimeSpan eta = elapsed / step * (steps - step);
        Console.Write($"\r  [{new string('#', filled)}{new string('-', width - filled)}] step {step}/{steps}  " +
                      $"loss {loss:F3}  {elapsed:mm\\:ss} elapsed, {eta:mm\\:ss} left ");
    }
}
