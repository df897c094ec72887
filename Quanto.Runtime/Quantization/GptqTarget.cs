using Quanto.Nn;
using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>
/// The weight GPTQ aims at under asymmetric calibration (<see cref="GptqOptions.Asymmetric"/>): the layer's float
/// inputs x_f (every layer float) and the inputs x_q it gets with the layers before it quantized, paired row by row
/// over two runs of the same calibration pass, give ΔC = Σ (x_f - x_q) x_qᵀ; then
/// W* = W + W ΔC (H + λI)⁻¹ is the least-squares weight for W X_f from X_q, and
/// ||W X_f - Ŵ X_q||² = ||(W* - Ŵ) X_q||² + a constant for every Ŵ.
/// </summary>
internal sealed class GptqTarget : IDisposable
{
    private readonly QModule _module;
    private readonly List<Tensor> _floatRows = [];
    private readonly Tensor _cross;
    private int _paired;

    /// <summary>An empty target for <paramref name="module"/>'s <paramref name="features"/> inputs.</summary>
    public GptqTarget(QModule module, long features, Device device)
    {
        _module = module;
        _cross = zeros([features, features], ScalarType.Float32, device).DetachFromDisposeScope();
    }

    /// <summary>Keeps the rows of one float-pass input (in call order).</summary>
    public void AddFloatInput(Tensor input) =>
        _floatRows.Add(GptqHessian.RowsOf(_module, input).to(_cross.device).DetachFromDisposeScope());

    /// <summary>Pairs one quantized-pass input with the float-pass input of the same call.</summary>
    /// <exception cref="InvalidOperationException">The two passes differ (another number of calls or rows).
    /// </exception>
    public void AddQuantizedInput(Tensor input)
    {
        using var scope = NewDisposeScope();
        Tensor rows = GptqHessian.RowsOf(_module, input).to(_cross.device);
        if (_paired >= _floatRows.Count || !_floatRows[_paired].shape.SequenceEqual(rows.shape))
            throw Mismatch();
        _cross.addmm_(_floatRows[_paired].sub(rows).t(), rows);
        _paired++;
    }

    /// <summary>W*, in float32 shaped (out, d), for the Hessian of the quantized-pass inputs.</summary>
    /// <exception cref="InvalidOperationException">The quantized pass reached the layer fewer times than the float
    /// pass.</exception>
    public Tensor Weight(Tensor weight, Tensor hessian, double damping)
    {
        if (_paired != _floatRows.Count) throw Mismatch();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        long rows = weight.shape[0];
        Tensor w = weight.detach().reshape(rows, -1).to(ScalarType.Float64).to(_cross.device);
        Tensor h = hessian.to(ScalarType.Float64, copy: true);
        double mean = h.diagonal().mean().item<double>();
        if (!(mean > 0)) return w.to(ScalarType.Float32).MoveToOuterDisposeScope();
        h.diagonal().add_(Math.Max(damping, 1e-6) * mean);
        Tensor m = w.mm(_cross.to(ScalarType.Float64));
        Tensor correction = linalg.solve(h, m.t()).t();
        return w.add(correction).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    private InvalidOperationException Mismatch() =>
        new($"GPTQ (asymmetric): the calibration pass gave {_module.Describe()} different inputs on two runs " +
            $"({_floatRows.Count} calls with every layer float); it must run the same batches in the same order " +
            "each time (no random sampling, dropout off: model.eval()).");

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (Tensor t in _floatRows) t.Dispose();
        _cross.Dispose();
    }
}
