using System.Diagnostics;
using Quanto.Serialization;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Demo;

/// <summary>Training and evaluation loops, with a one-line progress display.</summary>
internal static class Training
{
    /// <summary>Trains <paramref name="model"/>'s parameters (Adam, batch 64) for <paramref name="epochs"/> through
    /// <paramref name="forward"/> (its <c>forward</c>, or a generated ForwardQuantized for quantization-aware
    /// training), printing progress.</summary>
    public static void Train(Module model, Func<Tensor, Tensor> forward, Mnist data, int epochs, double lr,
        string label)
    {
        model.train();
        using var optimizer = optim.Adam(model.parameters(), lr);
        long n = data.TrainImages.shape[0];
        const int Batch = 64;
        long steps = (n + Batch - 1) / Batch;
        var clock = Stopwatch.StartNew();
        for (int epoch = 0; epoch < epochs; epoch++)
        {
            double lossSum = 0;
            for (long step = 0; step < steps; step++)
            {
                using var scope = NewDisposeScope();
                long start = step * Batch, count = Math.Min(Batch, n - start);
                Tensor x = data.TrainImages.narrow(0, start, count);
                Tensor y = data.TrainLabels.narrow(0, start, count);
                optimizer.zero_grad();
                Tensor loss = functional.cross_entropy(forward(x), y);
                loss.backward();
                optimizer.step();
                lossSum += loss.item<float>();
                if (step % 10 == 0 || step == steps - 1)
                    Progress(label, epoch, epochs, step + 1, steps, lossSum / (step + 1), clock.Elapsed);
            }
        }
        Console.WriteLine();
        model.eval();
    }

    /// <summary>Top-1 accuracy on the test split, in percent.</summary>
    public static double Accuracy(Module<Tensor, Tensor> model, Mnist data)
    {
        model.eval();
        return Accuracy(model.forward, data);
    }

    /// <summary>Top-1 accuracy of any forward function (e.g. a generated ForwardQuantized), in percent.</summary>
    public static double Accuracy(Func<Tensor, Tensor> forward, Mnist data)
    {
        using var noGrad = no_grad();
        long correct = 0, n = data.TestImages.shape[0];
        for (long start = 0; start < n; start += 500)
        {
            using var scope = NewDisposeScope();
            long count = Math.Min(500, n - start);
            Tensor predicted = forward(data.TestImages.narrow(0, start, count)).argmax(1);
            correct += predicted.eq(data.TestLabels.narrow(0, start, count)).sum().item<long>();
        }
        return 100.0 * correct / n;
    }

    /// <summary>Loads cached float weights, or trains and caches them (safetensors).</summary>
    public static void TrainOrLoad(Module model, Mnist data, string weightsPath, int epochs, bool quiet = false)
    {
        if (File.Exists(weightsPath))
        {
            using StateDict saved = Safetensors.Load(weightsPath);
            model.load_state_dict(saved.Tensors.ToDictionary(p => p.Key, p => p.Value));
            if (!quiet) Console.WriteLine($"Loaded trained float weights from {weightsPath}");
            return;
        }
        Train(model, ((Module<Tensor, Tensor>)model).forward, data, epochs, 1e-3, "training fp32 CNN");
        Safetensors.Save(weightsPath, model.state_dict());
        Console.WriteLine($"Saved trained float weights to {weightsPath}");
    }

    private static void Progress(string label, int epoch, int epochs, long step, long steps, double loss, TimeSpan elapsed)
    {
        const int Width = 30;
        double done = (epoch + (double)step / steps) / epochs;
        int filled = (int)(done * Width);
        Console.Write($"\r{label} [{new string('#', filled)}{new string('.', Width - filled)}] epoch {epoch + 1}/{epochs} " +
                      $"loss {loss:F4} {elapsed.TotalSeconds:F0}s ");
    }
}
