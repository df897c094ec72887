using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Kernels;

/// <summary>
/// The one interface every matmul backend implements (TorchSharp fallback, managed SIMD CPU, ILGPU). Modules and
/// generated code never call a backend directly: they prepare a weight once, then call <see cref="Linear"/> or
/// <see cref="LinearInt8"/> with that prepared form.
/// </summary>
public interface IQuantKernels
{
    /// <summary>Short name for reports ("torch", "cpu-avx512", "ilgpu-cuda").</summary>
    string Name { get; }

    /// <summary>True when this backend can run <paramref name="weight"/> for inputs of <paramref name="inputDtype"/>
    /// on <paramref name="device"/>.</summary>
    bool CanRun(QuantizedWeight weight, ScalarType inputDtype, Device device);

    /// <summary>
    /// The backend's form of a weight, made once (at Freeze or first use): a kernel-specific layout, device upload,
    /// precomputed scale*shift. Never written to disk; the canonical <see cref="PreparedWeight.Source"/> is.
    /// </summary>
    /// <exception cref="NotSupportedException">The backend cannot run this weight (check <see cref="CanRun"/>).</exception>
    PreparedWeight Prepare(QuantizedWeight weight);

    /// <summary>
    /// y = x · dequant(W)ᵀ (+ bias). x is (..., K) float (Float32 or BFloat16), W is (N, K); y is (..., N) in x's dtype.
    /// Bias, if any, is float (N).
    /// </summary>
    /// <exception cref="ArgumentException">Shapes disagree (message names both shapes).</exception>
    Tensor Linear(Tensor input, PreparedWeight weight, Tensor? bias);

    /// <summary>
    /// W8A8: y = (xq · Wqᵀ) * (xScale * wScale) (+ bias) with exact int32 accumulation. <paramref name="inputCodes"/>
    /// is int8 (..., K) quantized per tensor with scalar <paramref name="inputScale"/>; W is qint8.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes disagree, or W is not qint8.</exception>
    Tensor LinearInt8(Tensor inputCodes, Tensor inputScale, PreparedWeight weight, Tensor? bias, ScalarType outputDtype);
}

/// <summary>A weight in one backend's form. Dispose to free the backend's copy (not the source). It is usually made
/// inside a forward pass: implementations must detach the tensors they keep from the caller's dispose scope.</summary>
public abstract class PreparedWeight : IDisposable
{
    /// <summary>Wraps the canonical weight this was prepared from.</summary>
    protected PreparedWeight(QuantizedWeight source, IQuantKernels backend)
    {
        Source = source;
        Backend = backend;
    }

    /// <summary>The canonical (optimum-quanto layout) weight; what is saved.</summary>
    public QuantizedWeight Source { get; }

    /// <summary>The backend that made this and must run it.</summary>
    public IQuantKernels Backend { get; }

    /// <summary>Output features N (Source.Shape[0]).</summary>
    public long OutFeatures => Source.Shape[0];

    /// <summary>Input features K (elements per output row).</summary>
    public long InFeatures => Source.NumberOfElements / Source.Shape[0];

    /// <summary>Frees the backend's copy.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees backend resources.</summary>
    /// <param name="disposing">True from <see cref="Dispose()"/>.</param>
    protected virtual void Dispose(bool disposing)
    {
    }
}
