using static TorchSharp.torch;

namespace Quanto.Models.Llama;

/// <summary>
/// Rotary position embeddings as transformers computes them for Llama: inverse frequencies
/// theta^(-2i/d) (rope_theta), optionally rescaled ("linear": divided by the factor; "llama3": long wavelengths
/// divided by the factor, short ones kept, a smooth blend between), angles = position x frequency, and the
/// rotate-half form q' = q cos + rotate_half(q) sin with cos/sin over the two concatenated halves. Not a module: it
/// has no weights (transformers' inv_freq buffer is not persistent).
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly float[] _inverseFrequencies;

    /// <summary>Computes the frequencies for <paramref name="config"/>.</summary>
    public RotaryEmbedding(LlamaConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        _inverseFrequencies = InverseFrequencies(config);
    }

    /// <summary>The inverse frequencies (head_dim / 2 values) after scaling.</summary>
    public IReadOnlyList<float> InverseFrequenciesValues => _inverseFrequencies;

    /// <summary>cos and sin, each (positions, head_dim), in <paramref name="dtype"/>.</summary>
    /// <param name="start">First position.</param>
    /// <param name="count">Number of positions.</param>
    /// <param name="dtype">The model's dtype (angles are computed in float32, as transformers does).</param>
    /// <param name="device">The model's device.</param>
    public (Tensor Cos, Tensor Sin) CosSin(long start, long count, ScalarType dtype, Device device)
    {
        using var scope = NewDisposeScope();
        Tensor positions = arange(start, start + count, dtype: ScalarType.Float32, device: device);
        Tensor frequencies = tensor(_inverseFrequencies, device: device);
        Tensor angles = outer(positions, frequencies);
        Tensor both = cat([angles, angles], -1);
        return (both.cos().to(dtype).MoveToOuterDisposeScope(), both.sin().to(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>x (batch, heads, seq, head_dim) rotated by cos/sin (seq, head_dim).</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[^1] / 2;
        Tensor rotated = cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
        return x.mul(cos).add_(rotated.mul_(sin));
    }

    private static float[] InverseFrequencies(LlamaConfig config)
    {
        long dim = config.HeadDim;
        var values = new float[dim / 2];
        for (int i = 0; i < values.Length; i++)
        {
            // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), in float32.
            float exponent = (float)(2 * i) / dim;
            values[i] = 1f / MathF.Pow((float)config.RopeTheta, exponent);
        }
        if (config.RopeScaling is not RopeScaling scaling) return values;
        if (scaling.Type == "linear")
        {
            for (int i = 0; i < values.Length; i++) values[i] /= (float)scaling.Factor;
            return values;
        }
        double lowWavelength = scaling.OriginalMaxPositionEmbeddings / scaling.LowFreqFactor;
        double highWavelength = scaling.OriginalMaxPositionEmbeddings / scaling.HighFreqFactor;
        for (int i = 0; i < values.Length; i++)
        {
            double frequency = values[i];
            double wavelength = 2 * Math.PI / frequency;
            if (wavelength > lowWavelength)
            {
                values[i] = (float)(frequency / scaling.Factor);
            }
            else if (wavelength >= highWavelength)
            {
                double smooth = (scaling.OriginalMaxPositionEmbeddings / wavelength - scaling.LowFreqFactor) /
                                (scaling.HighFreqFactor - scaling.LowFreqFactor);
                values[i] = (float)((1 - smooth) * frequency / scaling.Factor + smooth * frequency);
            }
        }
        return values;
    }
}
