using System.Runtime.InteropServices;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// A weight in the int8-activation kernels' layout, in native memory: output columns in panels of 16, each panel
/// the run of its groups' 64-byte units (see <see cref="DotFormat"/>), groups padded with zero codes to a multiple
/// of 32 inputs; per panel and group 16 float scales and (2/4-bit) 16 float shifts, w = code * scale - shift. A
/// uint8 zero-point becomes the shift zp * scale. Columns past N in the last panel hold zeros. Made once per weight
/// (on the first dynamic-activation call), never saved.
/// </summary>
internal sealed unsafe class DotWeight : IDisposable
{
    private nint _memory;

    public DotWeight(QuantizedWeight source)
    {
        Format = source.QType switch
        {
            QType.QInt8 => DotFormat.Int8,
            QType.QInt4 => DotFormat.Int4,
            QType.QInt2 => DotFormat.Int2,
            _ => throw new NotSupportedException($"No int8-activation kernel runs {source.QType.QuantoName()} weights."),
        };
        (N, K, GroupLength) = CpuWeightFormats.Geometry(source);
        Groups = K / GroupLength;
        PaddedGroup = (GroupLength + DotFormats.GroupAlign - 1) / DotFormats.GroupAlign * DotFormats.GroupAlign;
        UnitsPerGroup = PaddedGroup / Format.UnitK();
        Panels = (N + DotFormats.PanelColumns - 1) / DotFormats.PanelColumns;
        // Size assertion: a unit holds exactly Bits per weight of its 16 x UnitK codes.
        if (DotFormats.UnitBytes * 8 != DotFormats.PanelColumns * Format.UnitK() * Format.Bits())
            throw new InvalidOperationException($"The {Format} unit does not hold {Format.Bits()} bits per weight.");
        PanelBytes = (long)Groups * UnitsPerGroup * DotFormats.UnitBytes;
        long codeBytes = Panels * PanelBytes;
        long perGroup = (long)Panels * Groups * DotFormats.PanelColumns * sizeof(float);
        bool affine = !Format.IsSigned();
        ByteSize = codeBytes + perGroup * (affine ? 2 : 1);
        void* memory = HugePages.Allocate(ByteSize);
        NativeMemory.Clear(memory, (nuint)ByteSize);
        _memory = (nint)memory;
        Codes = (byte*)memory;
        Scales = (float*)(Codes + codeBytes);
        Shifts = affine ? Scales + perGroup / sizeof(float) : null;
        GC.AddMemoryPressure(ByteSize);
        using var scope = NewDisposeScope();
        if (source is WeightQBytesTensor bytes) FillInt8(bytes);
        else FillPacked((WeightQBitsTensor)source);
    }

    private DotWeight(DotWeight other)
    {
        (Format, N, K, GroupLength, Groups, PaddedGroup) =
            (other.Format, other.N, other.K, other.GroupLength, other.Groups, other.PaddedGroup);
        (UnitsPerGroup, Panels, PanelBytes, ByteSize) = (other.UnitsPerGroup, other.Panels, other.PanelBytes, other.ByteSize);
        void* memory = HugePages.Allocate(ByteSize);
        Buffer.MemoryCopy(other.Codes, memory, ByteSize, ByteSize);
        _memory = (nint)memory;
        Codes = (byte*)memory;
        Scales = (float*)(Codes + ((byte*)other.Scales - other.Codes));
        Shifts = other.Shifts == null ? null : (float*)(Codes + ((byte*)other.Shifts - other.Codes));
        GC.AddMemoryPressure(ByteSize);
    }

    ~DotWeight() => Free();

    private static WeakReference<DotWeight>? _lastRun;
    private WeakReference<DotWeight>? _self;
    private WeakReference<DotWeight>? _next;

    /// <summary>
    /// Records that the GEMV runs this weight now, after the one it ran last (any thread): each weight remembers
    /// the weight that followed it last time (weakly: the chain keeps no weight alive). A decode step runs its layers
    /// in the same order every token, so the weight after this one is known before its call (see
    /// <see cref="DotGemvJob.PrefetchNext"/>). Concurrent callers may record each other's weights: the chain is a
    /// hint, never read for results.
    /// </summary>
    internal void RecordRun()
    {
        WeakReference<DotWeight> self = _self ??= new WeakReference<DotWeight>(this);
        WeakReference<DotWeight>? previous = Interlocked.Exchange(ref _lastRun, self);
        if (previous is null || ReferenceEquals(previous, self) || !previous.TryGetTarget(out DotWeight? before))
            return;
        if (before._next is null || !before._next.TryGetTarget(out DotWeight? known) || !ReferenceEquals(known, this))
            before._next = self;
    }

    /// <summary>The weight the GEMV ran after this one last time, if it is still alive and not disposed.</summary>
    internal DotWeight? Next =>
        _next is { } next && next.TryGetTarget(out DotWeight? weight) && weight._memory != 0 ? weight : null;

    /// <summary>A copy in its own memory (benchmarks rotate through copies).</summary>
    public DotWeight Clone() => new(this);

    public DotFormat Format { get; }

    /// <summary>Output columns.</summary>
    public int N { get; }

    /// <summary>Input features.</summary>
    public int K { get; }

    /// <summary>Inputs per weight group (K for qint8).</summary>
    public int GroupLength { get; }

    /// <summary>Groups per row.</summary>
    public int Groups { get; }

    /// <summary>Group length rounded up to a multiple of 32.</summary>
    public int PaddedGroup { get; }

    /// <summary>Activations per row in this layout (Groups * PaddedGroup).</summary>
    public int PaddedK => Groups * PaddedGroup;

    /// <summary>64-byte units per group.</summary>
    public int UnitsPerGroup { get; }

    /// <summary>Panels of 16 columns.</summary>
    public int Panels { get; }

    /// <summary>Code bytes per panel.</summary>
    public long PanelBytes { get; }

    /// <summary>Native bytes held.</summary>
    public long ByteSize { get; }

    /// <summary>Codes, panel after panel.</summary>
    public byte* Codes { get; }

    /// <summary>Scale per (panel, group, column), 16 floats per panel and group.</summary>
    public float* Scales { get; }

    /// <summary>Shift per (panel, group, column) for 2/4-bit weights, else null.</summary>
    public float* Shifts { get; }

    public void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    private void Free()
    {
        nint memory = Interlocked.Exchange(ref _memory, 0);
        if (memory == 0) return;
        HugePages.Free((void*)memory);
        GC.RemoveMemoryPressure(ByteSize);
    }

    private long ScaleIndex(int n, int g) =>
        ((long)(n / DotFormats.PanelColumns) * Groups + g) * DotFormats.PanelColumns + n % DotFormats.PanelColumns;

    private void FillInt8(WeightQBytesTensor weight)
    {
        Tensor data = weight.Data.cpu().contiguous().reshape(-1); // a view: the scope frees it, never weight.Data
        PackCodes(data.bytes, offset: 0x80); // signed code + 128
        ReadOnlySpan<float> scales = Floats(weight.Scale);
        for (int n = 0; n < N; n++) Scales[ScaleIndex(n, 0)] = scales[n];
    }

    private void FillPacked(WeightQBitsTensor weight)
    {
        using Tensor unpacked = weight.UnpackCodes();
        PackCodes(unpacked.bytes, offset: 0); // (N * Groups, GroupLength), row-major = (N, K)
        ReadOnlySpan<float> scales = Floats(weight.Scale);
        ReadOnlySpan<byte> zeroPoints = weight.HasZeroPoint ? Bytes(weight.Shift) : default;
        ReadOnlySpan<float> shifts = weight.HasZeroPoint ? default : Floats(weight.Shift);
        for (int n = 0; n < N; n++)
        {
            for (int g = 0; g < Groups; g++)
            {
                int i = n * Groups + g;
                long at = ScaleIndex(n, g);
                Scales[at] = scales[i];
                // (q - zp) * scale == q * scale - zp * scale: the zero-point becomes a float shift once, here.
                Shifts[at] = weight.HasZeroPoint ? zeroPoints[i] * scales[i] : shifts[i];
            }
        }
    }

    /// <summary>
    /// Writes (N, K) row-major codes into the units, in their order: unit u of group g of panel p holds, for column
    /// j and i in 0..3, plane c of byte 4j + i = input u * UnitK + 4c + i (codes past the group stay zero).
    /// </summary>
    private void PackCodes(ReadOnlySpan<byte> codes, byte offset)
    {
        int unitK = Format.UnitK(), planes = unitK / 4, bits = Format.Bits();
        byte* unit = Codes;
        for (int p = 0; p < Panels; p++)
        {
            for (int g = 0; g < Groups; g++)
            {
                for (int u = 0; u < UnitsPerGroup; u++, unit += DotFormats.UnitBytes)
                {
                    int k0 = u * unitK;
                    for (int j = 0; j < DotFormats.PanelColumns; j++)
                    {
                        int n = p * DotFormats.PanelColumns + j;
                        if (n >= N) break;
                        ReadOnlySpan<byte> row = codes.Slice(n * K + g * GroupLength);
                        for (int i = 0; i < 4; i++)
                        {
                            int value = 0;
                            for (int c = 0; c < planes; c++)
                            {
                                int kk = k0 + 4 * c + i;
                                if (kk < GroupLength) value |= (byte)(row[kk] ^ offset) << (c * bits);
                            }
                            unit[4 * j + i] = (byte)value;
                        }
                    }
                }
            }
        }
    }

    private static ReadOnlySpan<float> Floats(Tensor source) =>
        MemoryMarshal.Cast<byte, float>(source.to(ScalarType.Float32).cpu().contiguous().reshape(-1).bytes);

    private static ReadOnlySpan<byte> Bytes(Tensor source) => source.cpu().contiguous().reshape(-1).bytes;
}
