using Quanto.Nn;
using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>
/// H = Σ x xᵀ over the inputs a layer sees during calibration, in float32: the one (d, d) matrix GPTQ needs per layer
/// (64 MB for d = 4096). A Linear layer's inputs are its rows (..., in); a convolution's are its unfolded patches, in
/// the order of the weight's flattened (in, kh, kw).
/// </summary>
public sealed class GptqHessian : IDisposable
{
    private readonly Tensor _h;

    /// <summary>An empty accumulator for rows of <paramref name="features"/> inputs.</summary>
    /// <param name="features">d: in_features, or in * kh * kw.</param>
    /// <param name="device">Where the matrix lives (default CPU).</param>
    public GptqHessian(long features, Device? device = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(features);
        Features = features;
        _h = zeros([features, features], ScalarType.Float32, device).DetachFromDisposeScope();
    }

    /// <summary>d.</summary>
    public long Features { get; }

    /// <summary>Input rows added so far.</summary>
    public long Samples { get; private set; }

    /// <summary>The accumulated Σ x xᵀ (owned by this object).</summary>
    public Tensor Matrix => _h;

    /// <summary>Adds input rows: any tensor whose last dimension is d.</summary>
    /// <exception cref="ArgumentException">The last dimension is not d.</exception>
    public void Add(Tensor inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.dim() == 0 || inputs.shape[^1] != Features)
        {
            throw new ArgumentException(
                $"GPTQ inputs must end in {Features} features; got shape " +
                $"{Tensors.QuantizedWeight.FormatShape(inputs.shape)}.", nameof(inputs));
        }
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor x = inputs.detach().reshape(-1, Features).to(ScalarType.Float32).to(_h.device);
        _h.addmm_(x.t(), x);
        Samples += x.shape[0];
    }

    /// <summary>Adds what <paramref name="module"/> saw as <paramref name="input"/> (a QLinear's rows, a
    /// QConv2d's unfolded patches).</summary>
    /// <exception cref="NotSupportedException">Another kind of module.</exception>
    internal void AddInputOf(QModule module, Tensor input)
    {
        using var scope = NewDisposeScope();
        Add(RowsOf(module, input));
    }

    /// <summary>The input rows <paramref name="module"/> saw as <paramref name="input"/>, (n, d) in float32 (a
    /// QLinear's rows, a QConv2d's unfolded patches).</summary>
    /// <exception cref="NotSupportedException">Another kind of module.</exception>
    internal static Tensor RowsOf(QModule module, Tensor input)
    {
        using var noGrad = no_grad();
        Tensor rows;
        switch (module)
        {
            case QLinear:
                rows = input.detach();
                break;
            case QConv2d conv:
                long[] k = conv.FloatWeight!.shape;
                rows = nn.functional.unfold(input.detach(), (k[2], k[3]), Pair(conv.dilation), Pair(conv.padding),
                    Pair(conv.stride)).transpose(1, 2);
                break;
            default:
                throw new NotSupportedException($"GPTQ has no input rule for {module.Describe()}.");
        }
        return rows.dim() == 0 ? rows : rows.reshape(-1, rows.shape[^1]).to(ScalarType.Float32);
    }

    private static (long, long) Pair(long[] values) => (values[0], values[^1]);

    /// <inheritdoc />
    public void Dispose() => _h.Dispose();
}
