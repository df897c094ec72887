using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// The AVX-512 form of <see cref="DotGemv"/>: a 64-byte unit is one zmm, lane j column j of the panel; per input one
/// and (or shift), one vcvtdq2ps and one FMA per row, over four accumulator chains per row (12 of the 32 zmm).
/// </summary>
internal static unsafe class DotGemv512
{
    /// <summary>Panels [panel0, panel1) of every row; each format's panel is a method of its own (see
    /// <see cref="DotGemv256"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Panels<TR>(DotWeight w, DotGemvRows x, int panel0, int panel1, float* y, float* bias)
        where TR : struct, ITileRows
    {
        for (int p = panel0; p < panel1; p++)
        {
            switch (w.Format)
            {
                case DotFormat.Int4: Int4Panel<TR>(w, x, p, y, bias); break;
                case DotFormat.Int2: Int2Panel<TR>(w, x, p, y, bias); break;
                default: Int8Panel<TR>(w, x, p, y, bias); break;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Code(Vector512<uint> v) => Avx512F.ConvertToVector512Single(v.AsInt32());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Code(Vector512<int> v) => Avx512F.ConvertToVector512Single(v);

    /// <summary>a_r += code * x[r] for every row r (rows <paramref name="stride"/> floats apart).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Mac<TR>(Vector512<float> code, float* x, long stride, ref Vector512<float> a0,
        ref Vector512<float> a1, ref Vector512<float> a2)
        where TR : struct, ITileRows
    {
        a0 = Avx512F.FusedMultiplyAdd(code, Vector512.Create(*x), a0);
        if (TR.Rows > 1) a1 = Avx512F.FusedMultiplyAdd(code, Vector512.Create(x[stride]), a1);
        if (TR.Rows > 2) a2 = Avx512F.FusedMultiplyAdd(code, Vector512.Create(x[2 * stride]), a2);
    }

    /// <summary>One qint4 panel: per unit (8 inputs x 16 columns) eight and/shift, eight vcvtdq2ps, 8R FMAs.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Int4Panel<TR>(DotWeight w, DotGemvRows x, int panel, float* y, float* bias)
        where TR : struct, ITileRows
    {
        int groups = w.Groups, units = w.UnitsPerGroup;
        long stride = x.Stride;
        byte* unit = w.Codes + panel * w.PanelBytes;
        float* x0 = x.Data;
        Vector512<float> t0 = default, t1 = default, t2 = default;
        for (int g = 0; g < groups; g++)
        {
            Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
            Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
            Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
            for (int u = 0; u < units; u++, unit += DotFormats.UnitBytes, x0 += 8)
            {
                DotGemv.Prefetch(unit);
                Vector512<uint> v = Vector512.Load((uint*)unit);
                Mac<TR>(Code(v & Vector512.Create(0xFu)), x0, stride, ref a00, ref a10, ref a20);
                Mac<TR>(Code(v & Vector512.Create(0xF00u)), x0 + 1, stride, ref a01, ref a11, ref a21);
                Mac<TR>(Code(v & Vector512.Create(0xF0000u)), x0 + 2, stride, ref a02, ref a12, ref a22);
                Mac<TR>(Code(v & Vector512.Create(0xF000000u)), x0 + 3, stride, ref a03, ref a13, ref a23);
                Mac<TR>(Code(v & Vector512.Create(0xF0u)), x0 + 4, stride, ref a00, ref a10, ref a20);
                Mac<TR>(Code(v & Vector512.Create(0xF000u)), x0 + 5, stride, ref a01, ref a11, ref a21);
                Mac<TR>(Code(v & Vector512.Create(0xF00000u)), x0 + 6, stride, ref a02, ref a12, ref a22);
                Mac<TR>(Code(v >>> 28), x0 + 7, stride, ref a03, ref a13, ref a23);
            }
            Fold<TR>(w, x, panel, g, (a00 + a01) + (a02 + a03), (a10 + a11) + (a12 + a13),
                (a20 + a21) + (a22 + a23), ref t0, ref t1, ref t2);
        }
        StoreRows<TR>(w, panel, t0, t1, t2, y, bias);
    }

    /// <summary>
    /// One qint2 panel: per unit (16 inputs x 16 columns) sixteen and (input 4c + i at bit 8i + 2c; input 15, at
    /// bits 30-31, shifted down so the int32 stays non-negative), sixteen vcvtdq2ps, 16R FMAs.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Int2Panel<TR>(DotWeight w, DotGemvRows x, int panel, float* y, float* bias)
        where TR : struct, ITileRows
    {
        int groups = w.Groups, units = w.UnitsPerGroup;
        long stride = x.Stride;
        byte* unit = w.Codes + panel * w.PanelBytes;
        float* x0 = x.Data;
        Vector512<float> t0 = default, t1 = default, t2 = default;
        for (int g = 0; g < groups; g++)
        {
            Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
            Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
            Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
            for (int u = 0; u < units; u++, unit += DotFormats.UnitBytes, x0 += 16)
            {
                DotGemv.Prefetch(unit);
                Vector512<uint> v = Vector512.Load((uint*)unit);
                Mac<TR>(Code(v & Vector512.Create(0x3u)), x0, stride, ref a00, ref a10, ref a20);
                Mac<TR>(Code(v & Vector512.Create(0x300u)), x0 + 1, stride, ref a01, ref a11, ref a21);
                Mac<TR>(Code(v & Vector512.Create(0x30000u)), x0 + 2, stride, ref a02, ref a12, ref a22);
                Mac<TR>(Code(v & Vector512.Create(0x3000000u)), x0 + 3, stride, ref a03, ref a13, ref a23);
                Mac<TR>(Code(v & Vector512.Create(0xCu)), x0 + 4, stride, ref a00, ref a10, ref a20);
                Mac<TR>(Code(v & Vector512.Create(0xC00u)), x0 + 5, stride, ref a01, ref a11, ref a21);
                Mac<TR>(Code(v & Vector512.Create(0xC0000u)), x0 + 6, stride, ref a02, ref a12, ref a22);
                Mac<TR>(Code(v & Vector512.Create(0xC000000u)), x0 + 7, stride, ref a03, ref a13, ref a23);
                Mac<TR>(Code(v & Vector512.Create(0x30u)), x0 + 8, stride, ref a00, ref a10, ref a20);
                Mac<TR>(Code(v & Vector512.Create(0x3000u)), x0 + 9, stride, ref a01, ref a11, ref a21);
                Mac<TR>(Code(v & Vector512.Create(0x300000u)), x0 + 10, stride, ref a02, ref a12, ref a22);
                Mac<TR>(Code(v & Vector512.Create(0x30000000u)), x0 + 11, stride, ref a03, ref a13, ref a23);
                Mac<TR>(Code(v & Vector512.Create(0xC0u)), x0 + 12, stride, ref a00, ref a10, ref a20);
                Mac<TR>(Code(v & Vector512.Create(0xC000u)), x0 + 13, stride, ref a01, ref a11, ref a21);
                Mac<TR>(Code(v & Vector512.Create(0xC00000u)), x0 + 14, stride, ref a02, ref a12, ref a22);
                Mac<TR>(Code(v >>> 30), x0 + 15, stride, ref a03, ref a13, ref a23);
            }
            Fold<TR>(w, x, panel, g, (a00 + a01) + (a02 + a03), (a10 + a11) + (a12 + a13),
                (a20 + a21) + (a22 + a23), ref t0, ref t1, ref t2);
        }
        StoreRows<TR>(w, panel, t0, t1, t2, y, bias);
    }

    /// <summary>t_r += s * sum_r - t * sum(x_r) for group <paramref name="g"/> of every row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Fold<TR>(DotWeight w, DotGemvRows x, int panel, int g, Vector512<float> s0,
        Vector512<float> s1, Vector512<float> s2, ref Vector512<float> t0, ref Vector512<float> t1,
        ref Vector512<float> t2)
        where TR : struct, ITileRows
    {
        long at = ((long)panel * w.Groups + g) * DotFormats.PanelColumns;
        Vector512<float> scale = Vector512.Load(w.Scales + at), shift = Vector512.Load(w.Shifts + at);
        float* sums = x.GroupSums + g;
        t0 = Avx512F.FusedMultiplyAdd(s0, scale, t0);
        t0 = Avx512F.FusedMultiplyAdd(shift, Vector512.Create(-sums[0]), t0);
        if (TR.Rows > 1)
        {
            t1 = Avx512F.FusedMultiplyAdd(s1, scale, t1);
            t1 = Avx512F.FusedMultiplyAdd(shift, Vector512.Create(-sums[w.Groups]), t1);
        }
        if (TR.Rows > 2)
        {
            t2 = Avx512F.FusedMultiplyAdd(s2, scale, t2);
            t2 = Avx512F.FusedMultiplyAdd(shift, Vector512.Create(-sums[2 * w.Groups]), t2);
        }
    }

    /// <summary>
    /// One qint8 panel (one group): per unit (4 inputs x 16 columns) the stored code + 128 flipped to the signed
    /// code, each byte moved to the top byte (shift, and), so the lane holds code * 2^24; 2^-24 joins the scale.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Int8Panel<TR>(DotWeight w, DotGemvRows x, int panel, float* y, float* bias)
        where TR : struct, ITileRows
    {
        int units = w.Groups * w.UnitsPerGroup;
        long stride = x.Stride;
        byte* unit = w.Codes + panel * w.PanelBytes;
        float* x0 = x.Data;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector512<int> flip = Vector512.Create(unchecked((int)0x80808080));
        Vector512<int> top = Vector512.Create(unchecked((int)0xFF000000));
        for (int u = 0; u < units; u++, unit += DotFormats.UnitBytes, x0 += 4)
        {
            DotGemv.Prefetch(unit);
            Vector512<int> v = Vector512.Load((int*)unit) ^ flip;
            Mac<TR>(Code(v << 24), x0, stride, ref a00, ref a10, ref a20);
            Mac<TR>(Code((v << 16) & top), x0 + 1, stride, ref a01, ref a11, ref a21);
            Mac<TR>(Code((v << 8) & top), x0 + 2, stride, ref a02, ref a12, ref a22);
            Mac<TR>(Code(v & top), x0 + 3, stride, ref a03, ref a13, ref a23);
        }
        Vector512<float> scale = Vector512.Load(w.Scales + (long)panel * w.Groups * DotFormats.PanelColumns)
            * Vector512.Create(1f / (1 << 24));
        StoreRows<TR>(w, panel, ((a00 + a01) + (a02 + a03)) * scale, ((a10 + a11) + (a12 + a13)) * scale,
            ((a20 + a21) + (a22 + a23)) * scale, y, bias);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRows<TR>(DotWeight w, int panel, Vector512<float> t0, Vector512<float> t1,
        Vector512<float> t2, float* y, float* bias)
        where TR : struct, ITileRows
    {
        Store(w, panel, 0, t0, y, bias);
        if (TR.Rows > 1) Store(w, panel, 1, t1, y, bias);
        if (TR.Rows > 2) Store(w, panel, 2, t2, y, bias);
    }

    /// <summary>Row <paramref name="r"/>'s 16 columns of <paramref name="panel"/> (+ bias), fewer in a last
    /// panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(DotWeight w, int panel, int r, Vector512<float> sums, float* y, float* bias)
    {
        int col0 = panel * DotFormats.PanelColumns;
        if (w.N - col0 >= DotFormats.PanelColumns)
        {
            float* target = y + (long)r * w.N + col0;
            (bias == null ? sums : sums + Vector512.Load(bias + col0)).Store(target);
            return;
        }
        StoreTail(w, panel, r, sums, y, bias);
    }

    /// <summary>The last panel's columns past N dropped (not inlined: its stackalloc would keep Store from being).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void StoreTail(DotWeight w, int panel, int r, Vector512<float> sums, float* y, float* bias)
    {
        float* lanes = stackalloc float[DotFormats.PanelColumns];
        sums.Store(lanes);
        DotGemv.StorePartial(w, panel, r, lanes, y, bias);
    }
}
