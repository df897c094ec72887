using Quanto.Tensors;

namespace Quanto.Kernels;

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

    /// <summary>Bytes this form holds in memory besides its <see cref="Source"/> (a kernel layout, a float copy, device
    /// memory); 0 when it only refers to the source.</summary>
    public virtual long ByteSize => 0;

    /// <summary>The part of <see cref="ByteSize"/> that is a float copy of the weight (kept for speed, e.g. small
    /// layers the CPU backend may run through libtorch); 0 when there is none.</summary>
    public virtual long FloatCopyBytes => 0;

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
