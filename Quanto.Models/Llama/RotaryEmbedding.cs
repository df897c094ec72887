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
    // Positions the first table covers; it doubles (up to max_position_embeddings) when a pass needs more.
    private const long FirstTableLength = 256;
    private readonly float[] _inverseFrequencies;
    private readonly long _maxPositions;
    private readonly object _grow = new();
    private Table? _table;

    /// <summary>Computes the frequencies for <paramref name="config"/>.</summary>
    public RotaryEmbedding(LlamaConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        _inverseFrequencies = InverseFrequencies(config);
        _maxPositions = config.MaxPositionEmbeddings;
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

    /// <summary>
    /// cos and sin of positions [start, start + count) as views of a table computed once per dtype and device (the
    /// same values as <see cref="CosSin"/>), with sin's first half negated: the form <see cref="Rotate"/> takes.
    /// Decoding then costs two views per step instead of recomputing the angles.
    /// </summary>
    internal (Tensor Cos, Tensor SignedSin) Cached(long start, long count, ScalarType dtype, Device device)
    {
        Table table = TableFor(start + count, dtype, device);
        return (table.Cos.narrow(0, start, count), table.SignedSin.narrow(0, start, count));
    }

    /// <summary>x (batch, heads, seq, head_dim) rotated by cos/sin (seq, head_dim).</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[^1] / 2;
        Tensor rotated = cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
        return x.mul(cos).add_(rotated.mul_(sin));
    }

    /// <summary>
    /// <see cref="Apply"/> with sin's first half already negated (<see cref="Cached"/>): rotate_half(x) sin equals
    /// roll(x, d/2) signed_sin value for value (negation is exact), in two operations fewer.
    /// </summary>
    internal static Tensor Rotate(Tensor x, Tensor cos, Tensor signedSin) =>
        x.mul(cos).add_(x.roll(x.shape[^1] / 2, -1).mul_(signedSin));

    private Table TableFor(long needed, ScalarType dtype, Device device)
    {
        Table? table = _table;
        if (table is not null && table.Fits(needed, dtype, device)) return table;
        lock (_grow)
        {
            table = _table;
            if (table is not null && table.Fits(needed, dtype, device)) return table;
            long length = Math.Max(table?.Length ?? FirstTableLength, FirstTableLength);
            while (length < needed) length *= 2;
            length = Math.Max(needed, Math.Min(length, _maxPositions));
            using var scope = NewDisposeScope();
            (Tensor cos, Tensor sin) = CosSin(0, length, dtype, device);
            long half = sin.shape[^1] / 2;
            Tensor signed = cat([sin.narrow(-1, 0, half).neg(), sin.narrow(-1, half, half)], -1);
            // Kept by the model for its lifetime (freed with it by the finalizer), never by a caller's scope; an
            // outgrown table is not disposed either, since another thread's pass may still read views of it.
            _table = table = new Table(cos.DetachFromDisposeScope(), signed.DetachFromDisposeScope(), dtype,
                device.type, device.index, length);
            return table;
        }
    }

    private sealed record Table(Tensor Cos, Tensor SignedSin, ScalarType DType, TorchSharp.DeviceType DeviceType,
        long DeviceIndex, long Length)
    {
        public bool Fits(long needed, ScalarType dtype, Device device) =>
            needed <= Length && dtype == DType && device.type == DeviceType && device.index == DeviceIndex;
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
