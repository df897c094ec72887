using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>Four unsigned weight bytes per int32 lane times four signed activation bytes, summed into the lane.</summary>
internal interface IDotStep
{
    /// <summary>acc + per lane sum over i of w byte i * x byte i (x the same four bytes in every lane).</summary>
    static abstract Vector256<int> Dot(Vector256<int> acc, Vector256<byte> w, int x);
}

/// <summary>AVX-VNNI vpdpbusd (the JIT emits it on 256-bit registers).</summary>
internal readonly struct VnniStep : IDotStep
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot(Vector256<int> acc, Vector256<byte> w, int x) =>
        AvxVnni.MultiplyWideningAndAdd(acc, w, Vector256.Create(x).AsSByte());
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
}

/// <summary>A unit's code planes: plane p holds inputs 4p..4p+3 of columns 0-7 (A) and 8-15 (B).</summary>
internal struct DotPlanes
{
    public Vector256<byte> A0, B0, A1, B1, A2, B2, A3, B3;
}

/// <summary>Splits one 64-byte unit of a <see cref="DotFormat"/> into its code planes.</summary>
internal interface IDotDecoder
{
    /// <summary>Code planes per unit (UnitK / 4).</summary>
    static abstract int Planes { get; }

    static abstract unsafe void Decode(byte* unit, out DotPlanes planes);
}

internal readonly unsafe struct Int8Planes : IDotDecoder
{
    public static int Planes => 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Decode(byte* unit, out DotPlanes planes)
    {
        Unsafe.SkipInit(out planes);
        planes.A0 = Vector256.Load(unit);
        planes.B0 = Vector256.Load(unit + 32);
    }
}

internal readonly unsafe struct Int4Planes : IDotDecoder
{
    public static int Planes => 2;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Decode(byte* unit, out DotPlanes planes)
    {
        Unsafe.SkipInit(out planes);
        Vector256<byte> a = Vector256.Load(unit), b = Vector256.Load(unit + 32), mask = Vector256.Create((byte)15);
        (planes.A0, planes.B0) = (a & mask, b & mask);
        (planes.A1, planes.B1) = (Bits.Shifted(a, 4, mask), Bits.Shifted(b, 4, mask));
    }
}

internal readonly unsafe struct Int2Planes : IDotDecoder
{
    public static int Planes => 4;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Decode(byte* unit, out DotPlanes planes)
    {
        Unsafe.SkipInit(out planes);
        Vector256<byte> a = Vector256.Load(unit), b = Vector256.Load(unit + 32), mask = Vector256.Create((byte)3);
        (planes.A0, planes.B0) = (a & mask, b & mask);
        (planes.A1, planes.B1) = (Bits.Shifted(a, 2, mask), Bits.Shifted(b, 2, mask));
        (planes.A2, planes.B2) = (Bits.Shifted(a, 4, mask), Bits.Shifted(b, 4, mask));
        (planes.A3, planes.B3) = (Bits.Shifted(a, 6, mask), Bits.Shifted(b, 6, mask));
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
                    TDecoder.Decode(w, out DotPlanes p);
                    Row<TStep, TDecoder>(ref a0, ref b0, p, x, rows);
                    if (rows > 1)
                    {
                        Row<TStep, TDecoder>(ref a1, ref b1, p, x + 1, rows);
                        Row<TStep, TDecoder>(ref a2, ref b2, p, x + 2, rows);
                        Row<TStep, TDecoder>(ref a3, ref b3, p, x + 3, rows);
                    }
                }
                Fold(tile, a0, b0, scaleA, scaleB, xScales[0], xCorrections == null ? 0 : xCorrections[0]);
                if (rows > 1)
                {
                    Fold(tile + 16, a1, b1, scaleA, scaleB, xScales[1], xCorrections == null ? 0 : xCorrections[1]);
                    Fold(tile + 32, a2, b2, scaleA, scaleB, xScales[2], xCorrections == null ? 0 : xCorrections[2]);
                    Fold(tile + 48, a3, b3, scaleA, scaleB, xScales[3], xCorrections == null ? 0 : xCorrections[3]);
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

    /// <summary>One row's planes: quad p of the row is the int at x[p * rows].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Row<TStep, TDecoder>(ref Vector256<int> a, ref Vector256<int> b, in DotPlanes p, int* x,
        int rows)
        where TStep : struct, IDotStep
        where TDecoder : struct, IDotDecoder
    {
        a = TStep.Dot(a, p.A0, x[0]);
        b = TStep.Dot(b, p.B0, x[0]);
        if (TDecoder.Planes < 2) return;
        a = TStep.Dot(a, p.A1, x[rows]);
        b = TStep.Dot(b, p.B1, x[rows]);
        if (TDecoder.Planes < 4) return;
        a = TStep.Dot(a, p.A2, x[2 * rows]);
        b = TStep.Dot(b, p.B2, x[2 * rows]);
        a = TStep.Dot(a, p.A3, x[3 * rows]);
        b = TStep.Dot(b, p.B3, x[3 * rows]);
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

/// <summary>The portable kernels.</summary>
internal static class PortableDot
{
    public static DotKernel Get(DotFormat format, int tileRows) =>
        SimdDot.Get<PortableStep>("portable256", format, tileRows);
}
