using ILGPU;
using ILGPU.Runtime;

namespace Quanto.Kernels.Ilgpu;

/// <summary>A grow-only device buffer for per-call data (x in, y out), so calls do not allocate device memory.</summary>
internal sealed class Scratch<T> : IDisposable where T : unmanaged
{
    private readonly Accelerator _accelerator;
    private MemoryBuffer1D<T, Stride1D.Dense>? _buffer;

    public Scratch(Accelerator accelerator) => _accelerator = accelerator;

    /// <summary>A view of at least one and exactly max(length, 1) elements (contents undefined).</summary>
    public ArrayView<T> Reserve(long length)
    {
        long needed = Math.Max(length, 1);
        if (_buffer is null || _buffer.Length < needed)
        {
            _buffer?.Dispose();
            _buffer = _accelerator.Allocate1D<T>(Math.Max(needed, (_buffer?.Length ?? 0) * 2));
        }
        return _buffer.View.SubView(0, needed);
    }

    /// <summary>A view holding a copy of <paramref name="data"/>.</summary>
    public ArrayView<T> Fill(T[] data)
    {
        ArrayView<T> view = Reserve(data.Length);
        if (data.Length > 0) view.SubView(0, data.Length).CopyFromCPU(data);
        return view;
    }

    public void Dispose()
    {
        _buffer?.Dispose();
        _buffer = null;
    }
}
