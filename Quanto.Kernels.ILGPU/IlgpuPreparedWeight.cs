using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using Quanto.Kernels.Ilgpu.Kernels;
using Quanto.Kernels.Ilgpu.Layout;
using Quanto.Tensors;

namespace Quanto.Kernels.Ilgpu;

/// <summary>
/// A weight uploaded to the accelerator in the kernel layout: codes, scales and (for 2/4-bit) shifts stay in device
/// memory until disposed; per call only activations move. The host copy of the layout is dropped after upload.
/// </summary>
public sealed class IlgpuPreparedWeight : PreparedWeight
{
    private MemoryBuffer1D<Chunk16, Stride1D.Dense>? _codes;
    private MemoryBuffer1D<float, Stride1D.Dense>? _scale;
    private MemoryBuffer1D<float, Stride1D.Dense>? _shift;

    internal IlgpuPreparedWeight(QuantizedWeight source, IlgpuKernels backend, Accelerator accelerator,
        KernelLayout layout)
        : base(source, backend)
    {
        Format = layout.Format;
        Shape = layout.Shape;
        Chunk16[] chunks = MemoryMarshal.Cast<byte, Chunk16>(layout.Codes).ToArray();
        _codes = accelerator.Allocate1D(chunks);
        _scale = accelerator.Allocate1D(layout.Scale);
        // Views may not be empty-backed on every accelerator: give unused shifts one element.
        _shift = accelerator.Allocate1D(layout.Shift.Length > 0 ? layout.Shift : [0f]);
        DeviceBytes = _codes.LengthInBytes + _scale.LengthInBytes + _shift.LengthInBytes;
    }

    /// <summary>The kernel family.</summary>
    public WeightFormat Format { get; }

    /// <summary>Sizes of the uploaded layout (M is 0).</summary>
    public LinearShape Shape { get; }

    /// <summary>Bytes held on the accelerator.</summary>
    public long DeviceBytes { get; }

    /// <summary>True once disposed.</summary>
    public bool IsDisposed => _codes is null;

    internal MemoryBuffer1D<Chunk16, Stride1D.Dense> Codes => _codes ?? throw Disposed();

    internal MemoryBuffer1D<float, Stride1D.Dense> Scale => _scale ?? throw Disposed();

    internal MemoryBuffer1D<float, Stride1D.Dense> Shift => _shift ?? throw Disposed();

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        _codes?.Dispose();
        _scale?.Dispose();
        _shift?.Dispose();
        _codes = null;
        _scale = null;
        _shift = null;
    }

    private ObjectDisposedException Disposed() =>
        new(nameof(IlgpuPreparedWeight), $"The ILGPU copy of {Source} was disposed; prepare the weight again.");
}
