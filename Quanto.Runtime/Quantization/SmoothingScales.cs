using Quanto.Nn;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>
/// The per-input-channel scales s of the two methods (the weight becomes W·diag(s), its input x / s). Both return
/// the scale with the relative output error on the group's sampled inputs before (s = 1) and after.
/// </summary>
internal static class SmoothingScales
{
    /// <summary>
    /// AWQ (Lin et al., 2023): s = mean|x|^α, normalised so max(s)·min(s) = 1, with α from a grid (0 first: no
    /// scaling) chosen to minimise Σ ||X Wᵀ - X (Q(W·diag(s)) / s)ᵀ||² over the group's layers, each quantized with
    /// its own qtype, group size and optimizer. Input channels that carry more signal get finer weight steps.
    /// </summary>
    internal static (Tensor Scale, double Alpha, double Before, double After) Awq(Smoothing.ConsumerGroup group,
        int gridSize)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor x = group.Sample;
        Tensor meanAbs = group.MeanAbs.clamp_min(1e-8);
        var references = group.Consumers.Select(c => x.mm(c.FloatWeight!.detach().to(ScalarType.Float32).t())).ToList();
        double energy = references.Sum(r => r.square().sum().to(ScalarType.Float64).item<double>());
        double before = double.NaN, best = double.PositiveInfinity, bestAlpha = 0;
        Tensor bestScale = ones_like(meanAbs);
        for (int i = 0; i < gridSize; i++)
        {
            double alpha = (double)i / gridSize;
            Tensor s = meanAbs.pow(alpha);
            s = s.div(s.max().mul(s.min()).sqrt());
            double error = 0;
            for (int c = 0; c < group.Consumers.Count; c++)
            {
                QLinear consumer = group.Consumers[c];
                Tensor w = consumer.FloatWeight!.detach();
                using QuantizedWeight q = WeightQuantizer.Quantize(w.mul(s.to(w.dtype).unsqueeze(0)),
                    consumer.WeightQType!.Value, consumer.GroupSize, consumer.Optimizer);
                Tensor effective = q.Dequantize().to(ScalarType.Float32).div(s.unsqueeze(0));
                error += x.mm(effective.t()).sub(references[c]).square().sum().to(ScalarType.Float64).item<double>();
            }
            error /= Math.Max(energy, double.Epsilon);
            if (i == 0) before = error;
            if (error < best)
            {
                (best, bestAlpha, bestScale) = (error, alpha, s);
            }
        }
        return (bestScale.MoveToOuterDisposeScope(), bestAlpha, before, best);
    }

    /// <summary>
    /// SmoothQuant (Xiao et al., 2023): s_j = max|x_j|^α / max|W_:,j|^(1 - α) over the group's weights, moving the
    /// activations' outlier channels into the weights so per-tensor int8 activations keep their resolution. Channels
    /// that are all zero keep s = 1. The errors are of int8 weights (per channel) times int8 inputs (per tensor,
    /// absmax of the sample) on the sampled inputs.
    /// </summary>
    internal static (Tensor Scale, double Before, double After) SmoothQuant(Smoothing.ConsumerGroup group, double alpha)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor wmax = group.Consumers
            .Select(c => c.FloatWeight!.detach().to(ScalarType.Float32).abs().amax([0]))
            .Aggregate((a, b) => a.maximum(b));
        Tensor xmax = group.MaxAbs!;
        Tensor s = xmax.pow(alpha).div(wmax.pow(1 - alpha)).clamp(1e-5, 1e5);
        s = s.masked_fill(xmax.eq(0).logical_or(wmax.eq(0)), 1);
        Tensor x = group.Sample;
        double before = W8A8Error(group, x, ones_like(s)), after = W8A8Error(group, x, s);
        return (s.MoveToOuterDisposeScope(), before, after);
    }

    private static double W8A8Error(Smoothing.ConsumerGroup group, Tensor x, Tensor s)
    {
        using var scope = NewDisposeScope();
        Tensor xs = x.div(s.unsqueeze(0));
        Tensor inputScale = xs.abs().max().div(127).clamp_min(1e-12);
        Tensor xq = xs.div(inputScale).round().clamp(-128, 127).mul(inputScale);
        double error = 0, energy = 0;
        foreach (QLinear consumer in group.Consumers)
        {
            Tensor w = consumer.FloatWeight!.detach().to(ScalarType.Float32);
            Tensor reference = x.mm(w.t());
            using QuantizedWeight q = WeightQuantizer.Quantize(w.mul(s.unsqueeze(0)), QType.QInt8);
            Tensor y = xq.mm(q.Dequantize().t());
            error += y.sub(reference).square().sum().to(ScalarType.Float64).item<double>();
            energy += reference.square().sum().to(ScalarType.Float64).item<double>();
        }
        return error / Math.Max(energy, double.Epsilon);
    }
}
