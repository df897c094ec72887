using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// The AVX2 + FMA form of <see cref="DotGemv"/>: a 64-byte unit is two ymm, columns 0-7 (l) and 8-15 (h), decoded
/// in place as the AVX-512 form does. Eight ymm accumulate, four slots of two halves (<see cref="Mac{TR}"/>): four
/// chains at one row, two per row at two, one per row at three, so the 16 ymm hold the two halves of the unit, the
/// decoded codes and the broadcast activations without spilling (twelve accumulators at three rows spilled the
/// codes to the stack and ran slower than the block GEMV).
/// </summary>
internal static unsafe class DotGemv256
{
    /// <summary>Panels [panel0, panel1) of every row. Each format's panel is a method of its own, not inlined: all
    /// three inlined into this one, the qint2 loop (the same instructions) ran 4 to 8x slower at one row.</summary>
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

    /// <summary>
    /// Input <paramref name="n"/> of a unit (codes <paramref name="lo"/>, <paramref name="hi"/>) times each row's
    /// activation (rows <paramref name="s"/> floats apart) into its slot: one row, slot n mod 4; two rows, row r's
    /// slot 2r + n mod 2; three rows, row r's slot r.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Mac<TR>(Vector256<int> lo, Vector256<int> hi, float* x, long s, int n,
        ref Vector256<float> c0l, ref Vector256<float> c0h, ref Vector256<float> c1l, ref Vector256<float> c1h,
        ref Vector256<float> c2l, ref Vector256<float> c2h, ref Vector256<float> c3l, ref Vector256<float> c3h)
        where TR : struct, ITileRows
    {
        Vector256<float> cl = Avx.ConvertToVector256Single(lo), ch = Avx.ConvertToVector256Single(hi);
        Vector256<float> b = Vector256.Create(*x);
        if (TR.Rows == 1)
        {
            switch (n & 3)
            {
                case 0: Fma2(cl, ch, b, ref c0l, ref c0h); break;
                case 1: Fma2(cl, ch, b, ref c1l, ref c1h); break;
                case 2: Fma2(cl, ch, b, ref c2l, ref c2h); break;
                default: Fma2(cl, ch, b, ref c3l, ref c3h); break;
            }
        }
        else if (TR.Rows == 2)
        {
            Vector256<float> b1 = Vector256.Create(x[s]);
            if ((n & 1) == 0)
            {
                Fma2(cl, ch, b, ref c0l, ref c0h);
                Fma2(cl, ch, b1, ref c2l, ref c2h);
            }
            else
            {
                Fma2(cl, ch, b, ref c1l, ref c1h);
                Fma2(cl, ch, b1, ref c3l, ref c3h);
            }
        }
        else
        {
            Fma2(cl, ch, b, ref c0l, ref c0h);
            Fma2(cl, ch, Vector256.Create(x[s]), ref c1l, ref c1h);
            Fma2(cl, ch, Vector256.Create(x[2 * s]), ref c2l, ref c2h);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Fma2(Vector256<float> cl, Vector256<float> ch, Vector256<float> x, ref Vector256<float> l,
        ref Vector256<float> h)
    {
        l = Fma.MultiplyAdd(cl, x, l);
        h = Fma.MultiplyAdd(ch, x, h);
    }

    /// <summary>Row <paramref name="r"/>'s sum over its slots (see <see cref="Mac{TR}"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Row<TR>(int r, Vector256<float> c0, Vector256<float> c1, Vector256<float> c2,
        Vector256<float> c3)
        where TR : struct, ITileRows => TR.Rows switch
        {
            1 => (c0 + c1) + (c2 + c3),
            2 => r == 0 ? c0 + c1 : c2 + c3,
            _ => r == 0 ? c0 : r == 1 ? c1 : c2,
        };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> M(uint mask) => Vector256.Create(mask).AsInt32();

    /// <summary>One qint4 panel: per unit (8 inputs x 16 columns) 16 and/shift, 16 vcvtdq2ps, 16R FMAs.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
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
            Vector256<float> c0l = default, c0h = default, c1l = default, c1h = default;
            Vector256<float> c2l = default, c2h = default, c3l = default, c3h = default;
            for (int u = 0; u < units; u++, unit += DotFormats.UnitBytes, x0 += 8)
            {
                DotGemv.Prefetch(unit);
                Vector256<int> l = Vector256.Load((int*)unit), h = Vector256.Load((int*)(unit + 32));
                Mac<TR>(l & M(0xF), h & M(0xF), x0, s, 0,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0xF00), h & M(0xF00), x0 + 1, s, 1,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0xF0000), h & M(0xF0000), x0 + 2, s, 2,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0xF000000), h & M(0xF000000), x0 + 3, s, 3,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0xF0), h & M(0xF0), x0 + 4, s, 4,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0xF000), h & M(0xF000), x0 + 5, s, 5,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0xF00000), h & M(0xF00000), x0 + 6, s, 6,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l >>> 28, h >>> 28, x0 + 7, s, 7,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
            }
            Fold<TR>(w, x, panel, g, Row<TR>(0, c0l, c1l, c2l, c3l), Row<TR>(0, c0h, c1h, c2h, c3h),
                Row<TR>(1, c0l, c1l, c2l, c3l), Row<TR>(1, c0h, c1h, c2h, c3h),
                Row<TR>(2, c0l, c1l, c2l, c3l), Row<TR>(2, c0h, c1h, c2h, c3h),
                ref t0l, ref t0h, ref t1l, ref t1h, ref t2l, ref t2h);
        }
        StoreRows<TR>(w, panel, t0l, t0h, t1l, t1h, t2l, t2h, y, bias);
    }

    /// <summary>
    /// One qint2 panel: per unit (16 inputs x 16 columns) 32 and (input 4c + i at bit 8i + 2c; input 15, at bits
    /// 30-31, shifted down so the int32 stays non-negative), 32 vcvtdq2ps, 32R FMAs.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
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
            Vector256<float> c0l = default, c0h = default, c1l = default, c1h = default;
            Vector256<float> c2l = default, c2h = default, c3l = default, c3h = default;
            for (int u = 0; u < units; u++, unit += DotFormats.UnitBytes, x0 += 16)
            {
                DotGemv.Prefetch(unit);
                Vector256<int> l = Vector256.Load((int*)unit), h = Vector256.Load((int*)(unit + 32));
                Mac<TR>(l & M(0x3), h & M(0x3), x0, s, 0,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0x300), h & M(0x300), x0 + 1, s, 1,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0x30000), h & M(0x30000), x0 + 2, s, 2,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0x3000000), h & M(0x3000000), x0 + 3, s, 3,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0xC), h & M(0xC), x0 + 4, s, 4,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0xC00), h & M(0xC00), x0 + 5, s, 5,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0xC0000), h & M(0xC0000), x0 + 6, s, 6,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0xC000000), h & M(0xC000000), x0 + 7, s, 7,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0x30), h & M(0x30), x0 + 8, s, 8,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0x3000), h & M(0x3000), x0 + 9, s, 9,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0x300000), h & M(0x300000), x0 + 10, s, 10,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0x30000000), h & M(0x30000000), x0 + 11, s, 11,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0xC0), h & M(0xC0), x0 + 12, s, 12,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0xC000), h & M(0xC000), x0 + 13, s, 13,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l & M(0xC00000), h & M(0xC00000), x0 + 14, s, 14,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
                Mac<TR>(l >>> 30, h >>> 30, x0 + 15, s, 15,
                    ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
            }
            Fold<TR>(w, x, panel, g, Row<TR>(0, c0l, c1l, c2l, c3l), Row<TR>(0, c0h, c1h, c2h, c3h),
                Row<TR>(1, c0l, c1l, c2l, c3l), Row<TR>(1, c0h, c1h, c2h, c3h),
                Row<TR>(2, c0l, c1l, c2l, c3l), Row<TR>(2, c0h, c1h, c2h, c3h),
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
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Int8Panel<TR>(DotWeight w, DotGemvRows x, int panel, float* y, float* bias)
        where TR : struct, ITileRows
    {
        int units = w.Groups * w.UnitsPerGroup;
        long s = x.Stride;
        byte* unit = w.Codes + panel * w.PanelBytes;
        float* x0 = x.Data;
        Vector256<float> c0l = default, c0h = default, c1l = default, c1h = default;
        Vector256<float> c2l = default, c2h = default, c3l = default, c3h = default;
        Vector256<int> flip = M(0x80808080), top = M(0xFF000000);
        for (int u = 0; u < units; u++, unit += DotFormats.UnitBytes, x0 += 4)
        {
            DotGemv.Prefetch(unit);
            Vector256<int> l = Vector256.Load((int*)unit) ^ flip, h = Vector256.Load((int*)(unit + 32)) ^ flip;
            Mac<TR>(l << 24, h << 24, x0, s, 0,
                ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
            Mac<TR>((l << 16) & top, (h << 16) & top, x0 + 1, s, 1,
                ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
            Mac<TR>((l << 8) & top, (h << 8) & top, x0 + 2, s, 2,
                ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
            Mac<TR>(l & top, h & top, x0 + 3, s, 3,
                ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h);
        }
        float* scales = w.Scales + (long)panel * w.Groups * DotFormats.PanelColumns;
        Vector256<float> unscale = Vector256.Create(1f / (1 << 24));
        Vector256<float> scaleL = Vector256.Load(scales) * unscale, scaleH = Vector256.Load(scales + 8) * unscale;
        StoreRows<TR>(w, panel, Row<TR>(0, c0l, c1l, c2l, c3l) * scaleL, Row<TR>(0, c0h, c1h, c2h, c3h) * scaleH,
            Row<TR>(1, c0l, c1l, c2l, c3l) * scaleL, Row<TR>(1, c0h, c1h, c2h, c3h) * scaleH,
            Row<TR>(2, c0l, c1l, c2l, c3l) * scaleL, Row<TR>(2, c0h, c1h, c2h, c3h) * scaleH, y, bias);
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
        StoreTail(w, panel, r, low, high, y, bias);
    }

    /// <summary>The last panel's columns past N dropped (not inlined: its stackalloc would keep Store from being).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void StoreTail(DotWeight w, int panel, int r, Vector256<float> low, Vector256<float> high,
        float* y, float* bias)
    {
        float* lanes = stackalloc float[DotFormats.PanelColumns];
        low.Store(lanes);
        high.Store(lanes + 8);
        DotGemv.StorePartial(w, panel, r, lanes, y, bias);
    }
}
