using Quanto.Nn;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>
/// A layer whose output channels can be rescaled through its own parameters: a LayerNorm (elementwise weight and
/// bias), or a Linear layer (rows of its weight, and its bias). Dividing channel j by s_j here and multiplying the
/// consumers' input column j by s_j leaves the float model's output unchanged, which is how activation-aware scaling
/// and SmoothQuant are folded in. The parameters are the model's own (shared with quantized twins).
/// </summary>
internal sealed class ChannelProducer
{
    private ChannelProducer(string path, Tensor weight, Tensor? bias)
    {
        Path = path;
        Weight = weight;
        Bias = bias;
    }

    /// <summary>The producing module's path.</summary>
    internal string Path { get; }

    /// <summary>LayerNorm: (channels); Linear: (channels, in).</summary>
    internal Tensor Weight { get; }

    /// <summary>(channels), or null.</summary>
    internal Tensor? Bias { get; }

    /// <summary>Output channels.</summary>
    internal long Channels => Weight.shape[0];

    /// <summary>The producers of a model: its LayerNorms with affine parameters and its Linear layers (float, or
    /// quantized and not frozen), once each even where a generated twin shares a float layer's parameters.</summary>
    internal static List<ChannelProducer> Find(nn.Module model, IEnumerable<QModule> modules)
    {
        var found = new List<ChannelProducer>();
        var seen = new HashSet<IntPtr>();
        var named = new List<(string, nn.Module)> { ("", model) };
        named.AddRange(model.named_modules());
        named.AddRange(modules.Select(m => (m.Path, (nn.Module)m)));
        foreach ((string path, nn.Module module) in named)
        {
            (Tensor? weight, Tensor? bias) = module switch
            {
                LayerNorm { weight: not null } n when n.normalized_shape.Length == 1 => (n.weight, n.bias),
                Linear l => (l.weight, l.bias),
                QLinear { FloatWeight: not null } q => (q.FloatWeight, q.FloatBias),
                QLayerNorm { FloatWeight: not null } q when q.normalized_shape.Length == 1 =>
                    (q.FloatWeight, q.FloatBias),
                _ => (null, null),
            };
            if (weight is null || !seen.Add(weight.Handle)) continue;
            found.Add(new ChannelProducer(path, weight, bias));
        }
        return found;
    }

    /// <summary>Multiplies output channel j by <paramref name="factors"/>[j].</summary>
    internal void Scale(Tensor factors)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor f = factors.to(Weight.dtype, Weight.device);
        Weight.mul_(Weight.dim() == 1 ? f : f.unsqueeze(1));
        Bias?.mul_(f.to(Bias.dtype));
    }

    /// <summary>Copies of the parameters, to put back with <see cref="Restore"/>.</summary>
    internal (Tensor Weight, Tensor? Bias) Snapshot()
    {
        using var noGrad = no_grad();
        return (Weight.detach().clone().DetachFromDisposeScope(), Bias?.detach().clone().DetachFromDisposeScope());
    }

    /// <summary>Puts a snapshot back (and disposes it).</summary>
    internal void Restore((Tensor Weight, Tensor? Bias) snapshot)
    {
        using var noGrad = no_grad();
        Weight.copy_(snapshot.Weight);
        if (Bias is not null && snapshot.Bias is not null) Bias.copy_(snapshot.Bias);
        snapshot.Weight.Dispose();
        snapshot.Bias?.Dispose();
    }
}
