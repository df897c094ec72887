using System.Runtime.InteropServices;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Kernels.Cpu;

/// <summary>
/// A weight in the CPU kernels' layouts, each made on first use: for the int8-activation kernels
/// <see cref="Dot"/> (Int8/DotWeight.cs), and for the float-activation kernels this block layout, in 64-byte
/// aligned native memory (<see cref="EnsureBlocks"/>): each output row is a run of blocks
/// (see <see cref="CpuWeightFormat"/>), groups padded to whole blocks with zero codes, plus one float scale and
/// (affine formats) one float shift per group, so that w = code * scale - shift. 8-bit formats have one group per
/// row. A uint8 zero-point becomes the float shift zp * scale here. Made once, never saved.
/// </summary>
internal sealed unsafe class CpuPreparedWeight : PreparedWeight
{
    private nint _memory;

    /// <param name="source">The canonical weight.</param>
    /// <param name="backend">The backend that runs it.</param>
    /// <param name="format">Its CPU format.</param>
    /// <param name="floatCopy">Also keep a float32 copy (<see cref="FloatCopy"/>).</param>
    public CpuPreparedWeight(QuantizedWeight source, CpuKernels backend, CpuWeightFormat format, bool floatCopy = false)
        : base(source, backend)
    {
        if (floatCopy)
        {
            using var scope = NewDisposeScope();
            FloatCopy = source.Dequantize().to(ScalarType.Float32, CPU).reshape(source.Shape[0], -1).contiguous()
                .DetachFromDisposeScope(); // lives as long as this prepared weight
        }
        Format = format;
        (N, K, GroupSize) = CpuWeightFormats.Geometry(source);
        Groups = K / GroupSize;
        BlockWeights = format.BlockWeights();
        BlockBytes = format.BlockBytes();
        PaddedGroup = (GroupSize + BlockWeights - 1) / BlockWeights * BlockWeights;
        BlocksPerGroup = PaddedGroup / BlockWeights;
        PaddedK = Groups * PaddedGroup;
        RowBytes = checked(Groups * BlocksPerGroup * BlockBytes);
        // Size assertion: the blocks hold exactly Bits per weight of the padded row.
        if (BlockWeights * format.Bits() != BlockBytes * 8 || (long)RowBytes * 8 != (long)PaddedK * format.Bits())
            throw new InvalidOperationException($"Block layout of {format} does not hold {format.Bits()} bits per weight.");

        long codeBytes = (long)N * RowBytes;
        long perGroup = (long)N * Groups;
        _bytes = Align(codeBytes) + Align(perGroup * 4) * 2;
        _scalesOffset = Align(codeBytes);
        _shiftsOffset = _scalesOffset + Align(perGroup * 4);
    }

    private CpuPreparedWeight(CpuPreparedWeight other) : base(other.Source, other.Backend)
    {
        (Format, N, K, GroupSize, Groups, BlockWeights, BlockBytes) =
            (other.Format, other.N, other.K, other.GroupSize, other.Groups, other.BlockWeights, other.BlockBytes);
        (PaddedGroup, BlocksPerGroup, PaddedK, RowBytes, _bytes) =
            (other.PaddedGroup, other.BlocksPerGroup, other.PaddedK, other.RowBytes, other._bytes);
        (_scalesOffset, _shiftsOffset) = (other._scalesOffset, other._shiftsOffset);
        if (other._memory != 0)
        {
            void* memory = HugePages.Allocate(_bytes);
            Buffer.MemoryCopy((void*)other._memory, memory, _bytes, _bytes);
            Publish(memory);
        }
        if (other._dot is { } dot) _dot = dot.Clone();
    }

    ~CpuPreparedWeight() => Free();

    /// <summary>A copy in its own memory (benchmarks rotate through copies so caches cannot hold the weight).</summary>
    internal CpuPreparedWeight Clone() => new(this);

    /// <summary>
    /// Makes the block layout the float-activation kernels read (<see cref="Codes"/>, <see cref="Scales"/>,
    /// <see cref="Shifts"/>) on the first call; a weight that only runs the int8-activation
    /// kernels (<see cref="Dot"/>) never holds it. Safe under concurrent first calls.
    /// </summary>
    public void EnsureBlocks()
    {
        if (Volatile.Read(ref _memory) != 0) return;
        lock (_gate)
        {
            if (_memory != 0) return;
            ObjectDisposedException.ThrowIf(_disposed, this);
            void* memory = HugePages.Allocate(_bytes);
            try
            {
                NativeMemory.Clear(memory, (nuint)_bytes);
                Point(memory);
                using var scope = NewDisposeScope();
                if (Source is WeightQBytesTensor bytes) Fill8Bit(bytes);
                else Fill(Source as WeightQBitsTensor ?? throw new NotSupportedException($"Unknown weight type {Source}."));
            }
            catch
            {
                HugePages.Free(memory);
                throw;
            }
            Publish(memory);
        }
    }

    private void Point(void* memory)
    {
        _codes = (byte*)memory;
        _scales = (float*)((byte*)memory + _scalesOffset);
        _shifts = (float*)((byte*)memory + _shiftsOffset);
    }

    private void Publish(void* memory)
    {
        Point(memory);
        GC.AddMemoryPressure(_bytes);
        Volatile.Write(ref _memory, (nint)memory); // last: readers that see it see the pointers too
    }

    private readonly long _scalesOffset, _shiftsOffset;
    private byte* _codes;
    private float* _scales, _shifts;
    private bool _disposed;

    private readonly long _bytes;

    /// <inheritdoc />
    public override long ByteSize =>
        (Volatile.Read(ref _memory) != 0 ? _bytes : 0) + (Volatile.Read(ref _dot)?.ByteSize ?? 0) + FloatCopyBytes;

    private Int8.DotWeight? _dot;

    /// <summary>The weight dequantized to a float32 (N, K) tensor, for small weights (CpuKernels.FloatCopyLimit),
    /// else null.</summary>
    public Tensor? FloatCopy { get; }

    /// <inheritdoc />
    public override long FloatCopyBytes => FloatCopy is null ? 0 : FloatCopy.NumberOfElements * sizeof(float);

    /// <summary>The int8-activation kernels' layout of this weight, made on its first dynamic-activation call (once,
    /// under concurrent first calls) and freed with this prepared weight.</summary>
    /// <exception cref="NotSupportedException">The weight is not qint8, qint4 or qint2.</exception>
    public Int8.DotWeight Dot
    {
        get
        {
            Int8.DotWeight? dot = Volatile.Read(ref _dot);
            if (dot is not null) return dot;
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                return _dot ??= new Int8.DotWeight(Source);
            }
        }
    }

    private readonly Lock _gate = new();

    public CpuWeightFormat Format { get; }

    /// <summary>Output rows.</summary>
    public int N { get; }

    /// <summary>Input features.</summary>
    public int K { get; }

    /// <summary>Elements per group (K for per-channel formats).</summary>
    public int GroupSize { get; }

    /// <summary>Groups per row.</summary>
    public int Groups { get; }

    /// <summary>Group length rounded up to whole blocks.</summary>
    public int PaddedGroup { get; }

    /// <summary>Weights per block.</summary>
    public int BlockWeights { get; }

    /// <summary>Bytes per block.</summary>
    public int BlockBytes { get; }

    /// <summary>Blocks per group.</summary>
    public int BlocksPerGroup { get; }

    /// <summary>Row length in the padded activation layout (Groups * PaddedGroup floats).</summary>
    public int PaddedK { get; }

    /// <summary>Bytes of one output row of codes.</summary>
    public int RowBytes { get; }

    /// <summary>Codes, N rows of RowBytes (after <see cref="EnsureBlocks"/>).</summary>
    public byte* Codes => _codes;

    /// <summary>Scale per (row, group), row-major (after <see cref="EnsureBlocks"/>).</summary>
    public float* Scales => _scales;

    /// <summary>Shift per (row, group) (zero for 8-bit formats; after <see cref="EnsureBlocks"/>).</summary>
    public float* Shifts => _shifts;

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            lock (_gate)
            {
                _disposed = true;
                Free();
                Interlocked.Exchange(ref _dot, null)?.Dispose();
                FloatCopy?.Dispose();
            }
        }
        else
        {
            Free();
        }
    }

    private void Free()
    {
        nint memory = Interlocked.Exchange(ref _memory, 0);
        if (memory == 0) return;
        HugePages.Free((void*)memory);
        GC.RemoveMemoryPressure(_bytes);
    }

    private static long Align(long bytes) => (bytes + 63) / 64 * 64;

    private void Fill8Bit(WeightQBytesTensor weight)
    {
        Tensor data = weight.Data.cpu().contiguous().reshape(N, K); // a view: the scope frees it, never weight.Data
        ReadOnlySpan<byte> codes = data.bytes;
        for (int n = 0; n < N; n++)
        {
            ReadOnlySpan<byte> row = codes.Slice(n * K, K);
            row.CopyTo(new Span<byte>(Codes + (long)n * RowBytes, K));
        }
        CopyFloats(weight.Scale, new Span<float>(Scales, N));
    }

    private void Fill(WeightQBitsTensor weight)
    {
        Tensor codesTensor = weight.UnpackCodes();
        ReadOnlySpan<byte> codes = codesTensor.bytes;
        int groupsTotal = N * Groups;
        var scales = new Span<float>(Scales, groupsTotal);
        CopyFloats(weight.Scale, scales);
        var shifts = new Span<float>(Shifts, groupsTotal);
        if (weight.HasZeroPoint)
        {
            // (q - zp) * scale == q * scale - zp * scale: the zero-point becomes a float shift once, here.
            Tensor zp = weight.Shift.cpu().contiguous();
            ReadOnlySpan<byte> zeroPoints = zp.bytes;
            for (int i = 0; i < groupsTotal; i++) shifts[i] = zeroPoints[i] * scales[i];
        }
        else
        {
            CopyFloats(weight.Shift, shifts);
        }
        int groupBytes = BlocksPerGroup * BlockBytes;
        Span<byte> padded = stackalloc byte[PaddedGroup <= 4096 ? PaddedGroup : 0];
        byte[]? rented = PaddedGroup > 4096 ? new byte[PaddedGroup] : null;
        if (rented is not null) padded = rented;
        for (int group = 0; group < groupsTotal; group++)
        {
            padded.Clear();
            codes.Slice(group * GroupSize, GroupSize).CopyTo(padded);
            byte* target = Codes + (long)(group / Groups) * RowBytes + (long)(group % Groups) * groupBytes;
            for (int block = 0; block < BlocksPerGroup; block++)
                PackBlock(padded.Slice(block * BlockWeights, BlockWeights), target + block * BlockBytes);
        }
    }

    private void PackBlock(ReadOnlySpan<byte> q, byte* target)
    {
        if (Format == CpuWeightFormat.Int4)
        {
            for (int i = 0; i < 16; i++) target[i] = (byte)(q[i] | q[i + 16] << 4);
        }
        else
        {
            for (int i = 0; i < 16; i++)
                target[i] = (byte)(q[i] | q[i + 16] << 2 | q[i + 32] << 4 | q[i + 48] << 6);
        }
    }

    private static void CopyFloats(Tensor source, Span<float> target)
    {
        using Tensor values = source.to(ScalarType.Float32).cpu().contiguous().reshape(-1);
        MemoryMarshal.Cast<byte, float>(values.bytes)[..target.Length].CopyTo(target);
    }
}
