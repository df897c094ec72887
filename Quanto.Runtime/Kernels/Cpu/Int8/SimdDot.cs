using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>Four unsigned weight bytes per int32 lane times four signed activation bytes, summed into the lane.</summary>
internal interface IDotStep
{
    /// <summary>acc + per lane sum over i of w byte i * x byte i (x the same four bytes in every lane).</summary>
    static abstract Vector256<int> Dot(Vector256<int> acc, Vector256<byte> w, int x);

    /// <summary><see cref="Dot"/> of two planes (w0 with x0, w1 with x1) into one accumulator.</summary>
    static abstract Vector256<int> Dot2(Vector256<int> acc, Vector256<byte> w0, int x0, Vector256<byte> w1, int x1);

    /// <summary>True when <see cref="Dot"/> sums (stored qint8 code - 128) * x, the signed codes, so the kernel skips
    /// the 128 * sum(x) correction.</summary>
    static virtual bool SignedCodes => false;
}

/// <summary>AVX-VNNI vpdpbusd (the JIT emits it on 256-bit registers).</summary>
internal readonly struct VnniStep : IDotStep
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot(Vector256<int> acc, Vector256<byte> w, int x) =>
        AvxVnni.MultiplyWideningAndAdd(acc, w, Vector256.Create(x).AsSByte());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot2(Vector256<int> acc, Vector256<byte> w0, int x0, Vector256<byte> w1, int x1) =>
        Dot(Dot(acc, w0, x0), w1, x1);
}

/// <summary>
/// AVX2 for codes of at most 4 bits (qint4, qint2): vpmaddubsw multiplies the unsigned codes by the signed
/// activations and sums pairs in int16, vpmaddwd by ones sums pairs into the int32 lane. Exact: a pair is at most
/// 2 * 15 * 128 = 3840 in magnitude, and <see cref="Dot2"/> adds two pairs (7680) before widening, far from 2^15.
/// </summary>
internal readonly struct MaddStep : IDotStep
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot(Vector256<int> acc, Vector256<byte> w, int x) =>
        acc + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w, Vector256.Create(x).AsSByte()),
            Vector256.Create((short)1));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot2(Vector256<int> acc, Vector256<byte> w0, int x0, Vector256<byte> w1, int x1)
    {
        Vector256<short> pairs = Avx2.MultiplyAddAdjacent(w0, Vector256.Create(x0).AsSByte())
            + Avx2.MultiplyAddAdjacent(w1, Vector256.Create(x1).AsSByte());
        return acc + Avx2.MultiplyAddAdjacent(pairs, Vector256.Create((short)1));
    }
}

/// <summary>
/// AVX2 for 8-bit codes (stored + 128, 0..255): each code split into its nibbles, each nibble plane through
/// vpmaddubsw (pairs at most 2 * 15 * 128 in magnitude, so no int16 saturation even at activation -128) and
/// vpmaddwd, by 1 for the low nibble and by 16 for the high one. Exact.
/// </summary>
internal readonly struct NibbleStep : IDotStep
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot(Vector256<int> acc, Vector256<byte> w, int x)
    {
        Vector256<sbyte> xs = Vector256.Create(x).AsSByte();
        Vector256<byte> mask = Vector256.Create((byte)15);
        Vector256<short> low = Avx2.MultiplyAddAdjacent(w & mask, xs);
        Vector256<short> high = Avx2.MultiplyAddAdjacent(Bits.Shifted(w, 4, mask), xs);
        return acc + Avx2.MultiplyAddAdjacent(low, Vector256.Create((short)1))
            + Avx2.MultiplyAddAdjacent(high, Vector256.Create((short)16));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot2(Vector256<int> acc, Vector256<byte> w0, int x0, Vector256<byte> w1, int x1) =>
        Dot(Dot(acc, w0, x0), w1, x1);
}

/// <summary>Portable: each byte plane of w widened to int32, multiplied and added (exact, ~10x the work).</summary>
internal readonly struct PortableStep : IDotStep
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot(Vector256<int> acc, Vector256<byte> w, int x)
    {
        Vector256<int> lanes = w.AsInt32(), low = Vector256.Create(0xFF);
        acc += (lanes & low) * Vector256.Create((int)(sbyte)x);
        acc += ((lanes >>> 8) & low) * Vector256.Create((int)(sbyte)(x >> 8));
        acc += ((lanes >>> 16) & low) * Vector256.Create((int)(sbyte)(x >> 16));
        return acc + (lanes >>> 24) * Vector256.Create(x >> 24);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot2(Vector256<int> acc, Vector256<byte> w0, int x0, Vector256<byte> w1, int x1) =>
        Dot(Dot(acc, w0, x0), w1, x1);
}

/// <summary>The code planes of one half of a unit (columns 0-7 or 8-15): plane p holds inputs 4p..4p+3.</summary>
internal struct DotPlanes
{
    public Vector256<byte> P0, P1, P2, P3;
}

/// <summary>Splits one half (32 bytes: 8 columns) of a 64-byte unit of a <see cref="DotFormat"/> into its code
/// planes.</summary>
internal interface IDotDecoder
{
    /// <summary>Code planes per unit (UnitK / 4).</summary>
    static abstract int Planes { get; }

    static abstract unsafe void Decode(byte* half, out DotPlanes planes);
}

internal readonly unsafe struct Int8Planes : IDotDecoder
{
    public static int Planes => 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Decode(byte* half, out DotPlanes planes)
    {
        Unsafe.SkipInit(out planes);
        planes.P0 = Vector256.Load(half);
    }
}

internal readonly unsafe struct Int4Planes : IDotDecoder
{
    public static int Planes => 2;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Decode(byte* half, out DotPlanes planes)
    {
        Unsafe.SkipInit(out planes);
        Vector256<byte> v = Vector256.Load(half), mask = Vector256.Create((byte)15);
        planes.P0 = v & mask;
        planes.P1 = Bits.Shifted(v, 4, mask);
    }
}

internal readonly unsafe struct Int2Planes : IDotDecoder
{
    public static int Planes => 4;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Decode(byte* half, out DotPlanes planes)
    {
        Unsafe.SkipInit(out planes);
        Vector256<byte> v = Vector256.Load(half), mask = Vector256.Create((byte)3);
        planes.P0 = v & mask;
        planes.P1 = Bits.Shifted(v, 2, mask);
        planes.P2 = Bits.Shifted(v, 4, mask);
        planes.P3 = Bits.Shifted(v, 6, mask);
    }
}

/// <summary>Byte-plane extraction (AVX2 has no byte shift: shift 16-bit lanes, then mask).</summary>
internal static class Bits
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Shifted(Vector256<byte> v, int shift, Vector256<byte> mask) =>
        (v.AsUInt16() >>> shift).AsByte() & mask;
}

/// <summary>
/// The managed SIMD int8-activation kernels: the <see cref="DotReference"/> algorithm with 16 columns in two 256-bit
/// int32 accumulators per row, for tiles of 1 or 4 rows. Float steps are the reference's, so results are equal to it
/// bit for bit.
/// </summary>
internal static unsafe class SimdDot
{
    public static DotKernel Get<TStep>(string name, DotFormat format, int tileRows) where TStep : struct, IDotStep =>
        (format, tileRows) switch
        {
            (DotFormat.Int8, 1) => new(name, 1, &Run<TStep, Int8Planes, One>),
            (DotFormat.Int4, 1) => new(name, 1, &Run<TStep, Int4Planes, One>),
            (DotFormat.Int2, 1) => new(name, 1, &Run<TStep, Int2Planes, One>),
            (DotFormat.Int8, 4) => new(name, 4, &Run<TStep, Int8Planes, Four>),
            (DotFormat.Int4, 4) => new(name, 4, &Run<TStep, Int4Planes, Four>),
            (DotFormat.Int2, 4) => new(name, 4, &Run<TStep, Int2Planes, Four>),
            _ => throw new ArgumentOutOfRangeException(nameof(tileRows), tileRows, "Tiles are 1 or 4 rows."),
        };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Run<TStep, TDecoder, TRows>(DotArgs* a)
        where TStep : struct, IDotStep
        where TDecoder : struct, IDotDecoder
        where TRows : struct, ITileRows
    {
        int rows = TRows.Rows;
        float* tile = stackalloc float[rows * DotFormats.PanelColumns];
        int* x = (int*)a->X; // one int = four codes of one row
        float* xScales = a->XScales, xSums = a->XSums;
        int* xCorrections = a->XCorrections;
        for (int t = 0; t < a->Tiles; t++)
        {
            new Span<float>(tile, rows * DotFormats.PanelColumns).Clear();
            Tile<TStep, TDecoder>(a, rows, tile, ref x, ref xScales, ref xCorrections, ref xSums);
            DotTiles.Store(a, t, new ReadOnlySpan<float>(tile, rows * DotFormats.PanelColumns));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Tile<TStep, TDecoder>(DotArgs* a, int rows, float* tile, ref int* x, ref float* xScales,
        ref int* xCorrections, ref float* xSums)
        where TStep : struct, IDotStep
        where TDecoder : struct, IDotDecoder
    {
        byte* w = a->Weights;
        for (int g = 0; g < a->Groups; g++)
        {
            float* scales = a->Scales + g * DotFormats.PanelColumns;
            Vector256<float> scaleA = Vector256.Load(scales), scaleB = Vector256.Load(scales + 8);
            for (int b = 0; b < a->BlocksPerGroup; b++)
            {
                Vector256<int> a0 = default, b0 = default, a1 = default, b1 = default;
                Vector256<int> a2 = default, b2 = default, a3 = default, b3 = default;
                for (int u = 0; u < a->UnitsPerBlock; u++, w += DotFormats.UnitBytes, x += TDecoder.Planes * rows)
                {
                    // One half at a time (columns 0-7, then 8-15): its planes and the tile's accumulators fit the
                    // 16 ymm registers of AVX2 at four rows and four planes.
                    TDecoder.Decode(w, out DotPlanes p);
                    a0 = Row<TStep, TDecoder>(a0, p, x, rows);
                    if (rows > 1)
                    {
                        a1 = Row<TStep, TDecoder>(a1, p, x + 1, rows);
                        a2 = Row<TStep, TDecoder>(a2, p, x + 2, rows);
                        a3 = Row<TStep, TDecoder>(a3, p, x + 3, rows);
                    }
                    TDecoder.Decode(w + DotFormats.UnitBytes / 2, out p);
                    b0 = Row<TStep, TDecoder>(b0, p, x, rows);
                    if (rows > 1)
                    {
                        b1 = Row<TStep, TDecoder>(b1, p, x + 1, rows);
                        b2 = Row<TStep, TDecoder>(b2, p, x + 2, rows);
                        b3 = Row<TStep, TDecoder>(b3, p, x + 3, rows);
                    }
                }
                // Signed-code sums need no correction (the pointer still walks the array).
                int* c = TStep.SignedCodes ? null : xCorrections;
                Fold(tile, a0, b0, scaleA, scaleB, xScales[0], c == null ? 0 : c[0]);
                if (rows > 1)
                {
                    Fold(tile + 16, a1, b1, scaleA, scaleB, xScales[1], c == null ? 0 : c[1]);
                    Fold(tile + 32, a2, b2, scaleA, scaleB, xScales[2], c == null ? 0 : c[2]);
                    Fold(tile + 48, a3, b3, scaleA, scaleB, xScales[3], c == null ? 0 : c[3]);
                }
                xScales += rows;
                if (xCorrections != null) xCorrections += rows;
            }
            if (xSums == null) continue;
            float* shifts = a->Shifts + g * DotFormats.PanelColumns;
            Vector256<float> shiftA = -Vector256.Load(shifts), shiftB = -Vector256.Load(shifts + 8);
            for (int r = 0; r < rows; r++)
            {
                float* t = tile + r * DotFormats.PanelColumns;
                Vector256<float> sum = Vector256.Create(xSums[r]);
                Vector256.FusedMultiplyAdd(shiftA, sum, Vector256.Load(t)).Store(t);
                Vector256.FusedMultiplyAdd(shiftB, sum, Vector256.Load(t + 8)).Store(t + 8);
            }
            xSums += rows;
        }
    }

    /// <summary>One row's dot with one half's planes: quad p of the row is the int at x[p * rows].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Row<TStep, TDecoder>(Vector256<int> acc, in DotPlanes p, int* x, int rows)
        where TStep : struct, IDotStep
        where TDecoder : struct, IDotDecoder
    {
        if (TDecoder.Planes < 2) return TStep.Dot(acc, p.P0, x[0]);
        acc = TStep.Dot2(acc, p.P0, x[0], p.P1, x[rows]);
        if (TDecoder.Planes < 4) return acc;
        return TStep.Dot2(acc, p.P2, x[2 * rows], p.P3, x[3 * rows]);
    }

    /// <summary>tile += float(sum - correction) * (scale * xScale), fused, for 16 columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Fold(float* tile, Vector256<int> a, Vector256<int> b, Vector256<float> scaleA,
        Vector256<float> scaleB, float xScale, int correction)
    {
        Vector256<int> c = Vector256.Create(correction);
        Vector256<float> s = Vector256.Create(xScale);
        Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a - c), scaleA * s, Vector256.Load(tile)).Store(tile);
        Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(b - c), scaleB * s, Vector256.Load(tile + 8))
            .Store(tile + 8);
    }
}

/// <summary>Rows per tile as a JIT-time constant.</summary>
internal interface ITileRows
{
    static abstract int Rows { get; }
}

internal readonly struct One : ITileRows
{
    public static int Rows => 1;
}

internal readonly struct Four : ITileRows
{
    public static int Rows => 4;
}

/// <summary>The AVX-VNNI kernels.</summary>
internal static class AvxVnniDot
{
    public static DotKernel Get(DotFormat format, int tileRows) => SimdDot.Get<VnniStep>("avxvnni256", format, tileRows);
}

/// <summary>
/// AVX2 for 8-bit codes against activations in [-127, 127] (the dynamic modes' codes): the stored code flipped to
/// the signed code w, vpmaddubsw of |w| (at most 128) with x carrying w's sign (vpsignb), so a pair is at most
/// 2 * 128 * 127 = 32512 in magnitude: no int16 saturation; then vpmaddwd by ones. Exact; it sums the signed codes
/// (<see cref="SignedCodes"/>). An activation of -128 would be negated to itself, so static W8A8 codes, which may
/// hold -128, take <see cref="NibbleStep"/>.
/// </summary>
internal readonly struct SignStep : IDotStep
{
    public static bool SignedCodes => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot(Vector256<int> acc, Vector256<byte> w, int x)
    {
        Vector256<sbyte> signed = (w ^ Vector256.Create((byte)0x80)).AsSByte();
        Vector256<sbyte> xs = Avx2.Sign(Vector256.Create(x).AsSByte(), signed);
        return acc + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(signed), xs),
            Vector256.Create((short)1));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot2(Vector256<int> acc, Vector256<byte> w0, int x0, Vector256<byte> w1, int x1) =>
        Dot(Dot(acc, w0, x0), w1, x1);
}

/// <summary>The AVX2 kernels: for qint8 weights <see cref="SignStep"/> when the activation codes lie in
/// [-127, 127], else <see cref="NibbleStep"/>; <see cref="MaddStep"/> for qint4 and qint2.</summary>
internal static class Avx2Dot
{
    public static DotKernel Get(DotFormat format, int tileRows, bool symmetric) => format switch
    {
        DotFormat.Int8 when symmetric => SimdDot.Get<SignStep>("avx2-256-signed", format, tileRows),
        DotFormat.Int8 => SimdDot.Get<NibbleStep>("avx2-256", format, tileRows),
        _ => SimdDot.Get<MaddStep>("avx2-256", format, tileRows),
    };
}

/// <summary>The portable kernels.</summary>
internal static class PortableDot
{
    public static DotKernel Get(DotFormat format, int tileRows) =>
        SimdDot.Get<PortableStep>("portable256", format, tileRows);
}
