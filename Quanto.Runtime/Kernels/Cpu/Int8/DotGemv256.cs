using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// The AVX2 + FMA form of <see cref="DotGemv"/>: a 64-byte unit is two ymm, columns 0-7 (l) and 8-15 (h), decoded
/// in place as the AVX-512 form does. Two accumulator chains per row and half (inputs alternate between them): at
/// 3 rows 12 of the 16 ymm, leaving the two halves of the unit, the broadcast activation and one decoded code.
/// </summary>
internal static unsafe class DotGemv256
{
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

    /// <summary>l_r += float(lo) * x[r], h_r += float(hi) * x[r] for every row r (rows
    /// <paramref name="stride"/> floats apart).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Mac<TR>(Vector256<int> lo, Vector256<int> hi, float* x, long stride,
        ref Vector256<float> l0, ref Vector256<float> h0, ref Vector256<float> l1, ref Vector256<float> h1,
        ref Vector256<float> l2, ref Vector256<float> h2)
        where TR : struct, ITileRows
    {
        Vector256<float> cl = Avx.ConvertToVector256Single(lo), ch = Avx.ConvertToVector256Single(hi);
        Vector256<float> b = Vector256.Create(*x);
        l0 = Fma.MultiplyAdd(cl, b, l0);
        h0 = Fma.MultiplyAdd(ch, b, h0);
        if (TR.Rows > 1)
        {
            b = Vector256.Create(x[stride]);
            l1 = Fma.MultiplyAdd(cl, b, l1);
            h1 = Fma.MultiplyAdd(ch, b, h1);
        }
        if (TR.Rows > 2)
        {
            b = Vector256.Create(x[2 * stride]);
            l2 = Fma.MultiplyAdd(cl, b, l2);
            h2 = Fma.MultiplyAdd(ch, b, h2);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> M(uint mask) => Vector256.Create(mask).AsInt32();

    /// <summary>One qint4 panel: per unit (8 inputs x 16 columns) 16 and/shift, 16 vcvtdq2ps, 16R FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Int4Panel<TR>(DotWeight w, DotGemvRows x, int panel, float* y, float* bias)
        where TR : struct, ITileRows
    {
        int groups = w.Groups, units = w.UnitsPerGroup;
        long s = x.Stride;
        byte* unit = w.Codes + panel * w.PanelBytes;
        float* x0 = x.Data;
        Vector256<float> t0l = default, t0h = default, t1l = default, t1h = default, t2l = default, t2h = default;
        for (int g = 0; g < groups; g++)
        {
            Vector256<float> a0l = default, a0h = default, a1l = default, a1h = default, a2l = default, a2h = default;
            Vector256<float> b0l = default, b0h = default, b1l = default, b1h = default, b2l = default, b2h = default;
            for (int u = 0; u < units; u++, unit += DotFormats.UnitBytes, x0 += 8)
            {
                DotGemv.Prefetch(unit);
                Vector256<int> l = Vector256.Load((int*)unit), h = Vector256.Load((int*)(unit + 32));
                Mac<TR>(l & M(0xF), h & M(0xF), x0, s,
                    ref a0l, ref a0h, ref a1l, ref a1h, ref a2l, ref a2h);
                Mac<TR>(l & M(0xF00), h & M(0xF00), x0 + 1, s,
                    ref b0l, ref b0h, ref b1l, ref b1h, ref b2l, ref b2h);
                Mac<TR>(l & M(0xF0000), h & M(0xF0000), x0 + 2, s,
                    ref a0l, ref a0h, ref a1l, ref a1h, ref a2l, ref a2h);
                Mac<TR>(l & M(0xF000000), h & M(0xF000000), x0 + 3, s,
                    ref b0l, ref b0h, ref b1l, ref b1h, ref b2l, ref b2h);
                Mac<TR>(l & M(0xF0), h & M(0xF0), x0 + 4, s,
                    ref a0l, ref a0h, ref a1l, ref a1h, ref a2l, ref a2h);
                Mac<TR>(l & M(0xF000), h & M(0xF000), x0 + 5, s,
                    ref b0l, ref b0h, ref b1l, ref b1h, ref b2l, ref b2h);
                Mac<TR>(l & M(0xF00000), h & M(0xF00000), x0 + 6, s,
                    ref a0l, ref a0h, ref a1l, ref a1h, ref a2l, ref a2h);
                Mac<TR>(l >>> 28, h >>> 28, x0 + 7, s, ref b0l, ref b0h, ref b1l, ref b1h, ref b2l, ref b2h);
            }
            Fold<TR>(w, x, panel, g, a0l + b0l, a0h + b0h, a1l + b1l, a1h + b1h, a2l + b2l, a2h + b2h,
                ref t0l, ref t0h, ref t1l, ref t1h, ref t2l, ref t2h);
        }
        StoreRows<TR>(w, panel, t0l, t0h, t1l, t1h, t2l, t2h, y, bias);
    }

    /// <summary>
    /// One qint2 panel: per unit (16 inputs x 16 columns) 32 and (input 4c + i at bit 8i + 2c; input 15, at bits
    /// 30-31, shifted down so the int32 stays non-negative), 32 vcvtdq2ps, 32R FMAs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Int2Panel<TR>(DotWeight w, DotGemvRows x, int panel, float* y, float* bias)
        where TR : struct, ITileRows
    {
        int groups = w.Groups, units = w.UnitsPerGroup;
        long s = x.Stride;
        byte* unit = w.Codes + panel * w.PanelBytes;
        float* x0 = x.Data;
        Vector256<float> t0l = default, t0h = default, t1l = default, t1h = default, t2l = default, t2h = default;
        for (int g = 0; g < groups; g++)
        {
            Vector256<float> a0l = default, a0h = default, a1l = default, a1h = default, a2l = default, a2h = default;
            Vector256<float> b0l = default, b0h = default, b1l = default, b1h = default, b2l = default, b2h = default;
            for (int u = 0; u < units; u++, unit += DotFormats.UnitBytes, x0 += 16)
            {
                DotGemv.Prefetch(unit);
                Vector256<int> l = Vector256.Load((int*)unit), h = Vector256.Load((int*)(unit + 32));
                Mac<TR>(l & M(0x3), h & M(0x3), x0, s,
                    ref a0l, ref a0h, ref a1l, ref a1h, ref a2l, ref a2h);
                Mac<TR>(l & M(0x300), h & M(0x300), x0 + 1, s,
                    ref b0l, ref b0h, ref b1l, ref b1h, ref b2l, ref b2h);
                Mac<TR>(l & M(0x30000), h & M(0x30000), x0 + 2, s,
                    ref a0l, ref a0h, ref a1l, ref a1h, ref a2l, ref a2h);
                Mac<TR>(l & M(0x3000000), h & M(0x3000000), x0 + 3, s,
                    ref b0l, ref b0h, ref b1l, ref b1h, ref b2l, ref b2h);
                Mac<TR>(l & M(0xC), h & M(0xC), x0 + 4, s,
                    ref a0l, ref a0h, ref a1l, ref a1h, ref a2l, ref a2h);
                Mac<TR>(l & M(0xC00), h & M(0xC00), x0 + 5, s,
                    ref b0l, ref b0h, ref b1l, ref b1h, ref b2l, ref b2h);
                Mac<TR>(l & M(0xC0000), h & M(0xC0000), x0 + 6, s,
                    ref a0l, ref a0h, ref a1l, ref a1h, ref a2l, ref a2h);
                Mac<TR>(l & M(0xC000000), h & M(0xC000000), x0 + 7, s,
                    ref b0l, ref b0h, ref b1l, ref b1h, ref b2l, ref b2h);
                Mac<TR>(l & M(0x30), h & M(0x30), x0 + 8, s,
                    ref a0l, ref a0h, ref a1l, ref a1h, ref a2l, ref a2h);
                Mac<TR>(l & M(0x3000), h & M(0x3000), x0 + 9, s,
                    ref b0l, ref b0h, ref b1l, ref b1h, ref b2l, ref b2h);
                Mac<TR>(l & M(0x300000), h & M(0x300000), x0 + 10, s,
                    ref a0l, ref a0h, ref a1l, ref a1h, ref a2l, ref a2h);
                Mac<TR>(l & M(0x30000000), h & M(0x30000000), x0 + 11, s,
                    ref b0l, ref b0h, ref b1l, ref b1h, ref b2l, ref b2h);
                Mac<TR>(l & M(0xC0), h & M(0xC0), x0 + 12, s,
                    ref a0l, ref a0h, ref a1l, ref a1h, ref a2l, ref a2h);
                Mac<TR>(l & M(0xC000), h & M(0xC000), x0 + 13, s,
                    ref b0l, ref b0h, ref b1l, ref b1h, ref b2l, ref b2h);
                Mac<TR>(l & M(0xC00000), h & M(0xC00000), x0 + 14, s,
                    ref a0l, ref a0h, ref a1l, ref a1h, ref a2l, ref a2h);
                Mac<TR>(l >>> 30, h >>> 30, x0 + 15, s, ref b0l, ref b0h, ref b1l, ref b1h, ref b2l, ref b2h);
            }
            Fold<TR>(w, x, panel, g, a0l + b0l, a0h + b0h, a1l + b1l, a1h + b1h, a2l + b2l, a2h + b2h,
                ref t0l, ref t0h, ref t1l, ref t1h, ref t2l, ref t2h);
        }
        StoreRows<TR>(w, panel, t0l, t0h, t1l, t1h, t2l, t2h, y, bias);
    }

    /// <summary>t_r += s * sum_r - t * sum(x_r) for group <paramref name="g"/> of every row, both halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Fold<TR>(DotWeight w, DotGemvRows x, int panel, int g,
        Vector256<float> s0l, Vector256<float> s0h, Vector256<float> s1l, Vector256<float> s1h,
        Vector256<float> s2l, Vector256<float> s2h,
        ref Vector256<float> t0l, ref Vector256<float> t0h, ref Vector256<float> t1l, ref Vector256<float> t1h,
        ref Vector256<float> t2l, ref Vector256<float> t2h)
        where TR : struct, ITileRows
    {
        long at = ((long)panel * w.Groups + g) * DotFormats.PanelColumns;
        Vector256<float> scaleL = Vector256.Load(w.Scales + at), scaleH = Vector256.Load(w.Scales + at + 8);
        Vector256<float> shiftL = Vector256.Load(w.Shifts + at), shiftH = Vector256.Load(w.Shifts + at + 8);
        float* sums = x.GroupSums + g;
        Vector256<float> sum = Vector256.Create(-sums[0]);
        t0l = Fma.MultiplyAdd(shiftL, sum, Fma.MultiplyAdd(s0l, scaleL, t0l));
        t0h = Fma.MultiplyAdd(shiftH, sum, Fma.MultiplyAdd(s0h, scaleH, t0h));
        if (TR.Rows > 1)
        {
            sum = Vector256.Create(-sums[w.Groups]);
            t1l = Fma.MultiplyAdd(shiftL, sum, Fma.MultiplyAdd(s1l, scaleL, t1l));
            t1h = Fma.MultiplyAdd(shiftH, sum, Fma.MultiplyAdd(s1h, scaleH, t1h));
        }
        if (TR.Rows > 2)
        {
            sum = Vector256.Create(-sums[2 * w.Groups]);
            t2l = Fma.MultiplyAdd(shiftL, sum, Fma.MultiplyAdd(s2l, scaleL, t2l));
            t2h = Fma.MultiplyAdd(shiftH, sum, Fma.MultiplyAdd(s2h, scaleH, t2h));
        }
    }

    /// <summary>
    /// One qint8 panel (one group): per unit (4 inputs x 16 columns) the stored code + 128 flipped to the signed
    /// code, each byte moved to the top byte (shift, and), so the lane holds code * 2^24; 2^-24 joins the scale.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Int8Panel<TR>(DotWeight w, DotGemvRows x, int panel, float* y, float* bias)
        where TR : struct, ITileRows
    {
        int units = w.Groups * w.UnitsPerGroup;
        long s = x.Stride;
        byte* unit = w.Codes + panel * w.PanelBytes;
        float* x0 = x.Data;
        Vector256<float> a0l = default, a0h = default, a1l = default, a1h = default, a2l = default, a2h = default;
        Vector256<float> b0l = default, b0h = default, b1l = default, b1h = default, b2l = default, b2h = default;
        Vector256<int> flip = M(0x80808080), top = M(0xFF000000);
        for (int u = 0; u < units; u++, unit += DotFormats.UnitBytes, x0 += 4)
        {
            DotGemv.Prefetch(unit);
            Vector256<int> l = Vector256.Load((int*)unit) ^ flip, h = Vector256.Load((int*)(unit + 32)) ^ flip;
            Mac<TR>(l << 24, h << 24, x0, s, ref a0l, ref a0h, ref a1l, ref a1h, ref a2l, ref a2h);
            Mac<TR>((l << 16) & top, (h << 16) & top, x0 + 1, s, ref b0l, ref b0h, ref b1l, ref b1h, ref b2l, ref b2h);
            Mac<TR>((l << 8) & top, (h << 8) & top, x0 + 2, s, ref a0l, ref a0h, ref a1l, ref a1h, ref a2l, ref a2h);
            Mac<TR>(l & top, h & top, x0 + 3, s, ref b0l, ref b0h, ref b1l, ref b1h, ref b2l, ref b2h);
        }
        float* scales = w.Scales + (long)panel * w.Groups * DotFormats.PanelColumns;
        Vector256<float> unscale = Vector256.Create(1f / (1 << 24));
        Vector256<float> scaleL = Vector256.Load(scales) * unscale, scaleH = Vector256.Load(scales + 8) * unscale;
        StoreRows<TR>(w, panel, (a0l + b0l) * scaleL, (a0h + b0h) * scaleH, (a1l + b1l) * scaleL,
            (a1h + b1h) * scaleH, (a2l + b2l) * scaleL, (a2h + b2h) * scaleH, y, bias);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRows<TR>(DotWeight w, int panel, Vector256<float> t0l, Vector256<float> t0h,
        Vector256<float> t1l, Vector256<float> t1h, Vector256<float> t2l, Vector256<float> t2h, float* y, float* bias)
        where TR : struct, ITileRows
    {
        Store(w, panel, 0, t0l, t0h, y, bias);
        if (TR.Rows > 1) Store(w, panel, 1, t1l, t1h, y, bias);
        if (TR.Rows > 2) Store(w, panel, 2, t2l, t2h, y, bias);
    }

    /// <summary>Row <paramref name="r"/>'s 16 columns of <paramref name="panel"/> (+ bias), fewer in a last
    /// panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(DotWeight w, int panel, int r, Vector256<float> low, Vector256<float> high, float* y,
        float* bias)
    {
        int col0 = panel * DotFormats.PanelColumns;
        if (w.N - col0 >= DotFormats.PanelColumns)
        {
            float* target = y + (long)r * w.N + col0;
            if (bias != null)
            {
                low += Vector256.Load(bias + col0);
                high += Vector256.Load(bias + col0 + 8);
            }
            low.Store(target);
            high.Store(target + 8);
            return;
        }
        float* lanes = stackalloc float[DotFormats.PanelColumns];
        low.Store(lanes);
        high.Store(lanes + 8);
        DotGemv.StorePartial(w, panel, r, lanes, y, bias);
    }
}
