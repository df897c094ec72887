using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// The weight-only float32 GEMV (1 to 3 rows) on the <see cref="DotWeight"/> layout, AVX-512: a zmm holds one input
/// of a panel's 16 output columns, so there is no cross-lane shuffle and no horizontal sum. Each 32-bit lane of a
/// 64-byte unit holds consecutive inputs of one column; a code is decoded where it lies: one and (qint4) or shift and
/// and (qint8) puts code * 2^bit in the lane, vcvtdq2ps makes it a float exactly, and the FMA multiplies it by the
/// activation broadcast from memory, which <see cref="DotGemvRows"/> pre-multiplied by 2^-bit (qint4; qint8 folds
/// its one 2^-24 into the scale). Per group and row: s * sum(q * x) - t * sum(x), over four accumulator chains.
/// </summary>
/// <remarks>
/// The products are those of the other weight-only kernels (code times x in float32, powers of two exact), only the
/// accumulation order differs; an activation below 2^-98 in magnitude would lose bits to the pre-scaling (it
/// contributes below 2^-94 * scale). Panels are read in order, a contiguous stream, with a software prefetch
/// <see cref="Ahead"/> bytes ahead (the hardware prefetchers stop at each 4 KiB page).
/// </remarks>
internal static unsafe class DotGemv
{
    /// <summary>Prefetch distance in bytes: 32 cache lines ahead of the read.</summary>
    private const int Ahead = 2048;

    /// <summary>Rows it runs at most.</summary>
    public const int MaxRows = 3;

    /// <summary>True where it runs: AVX-512 F, qint4 and qint8.</summary>
    public static bool Supports(DotFormat format) => Avx512F.IsSupported && format is DotFormat.Int4 or DotFormat.Int8;

    /// <summary>y[r, columns of panels [panel0, panel1)] = x[r] · W + bias for every row of <paramref name="x"/>.</summary>
    public static void Run(DotWeight w, DotGemvRows x, int panel0, int panel1, float* y, float* bias)
    {
        switch (x.Rows)
        {
            case 1: Panels<One>(w, x, panel0, panel1, y, bias); break;
            case 2: Panels<Rows2>(w, x, panel0, panel1, y, bias); break;
            case 3: Panels<Rows3>(w, x, panel0, panel1, y, bias); break;
            default: throw new ArgumentOutOfRangeException(nameof(x), x.Rows, "The Dot GEMV runs 1 to 3 rows.");
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Panels<TR>(DotWeight w, DotGemvRows x, int panel0, int panel1, float* y, float* bias)
        where TR : struct, ITileRows
    {
        for (int p = panel0; p < panel1; p++)
        {
            if (w.Format == DotFormat.Int4) Int4Panel<TR>(w, x, p, y, bias);
            else Int8Panel<TR>(w, x, p, y, bias);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Code(Vector512<uint> v) => Avx512F.ConvertToVector512Single(v.AsInt32());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Code(Vector512<int> v) => Avx512F.ConvertToVector512Single(v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Fma(Vector512<float> code, float* x, Vector512<float> acc) =>
        Avx512F.FusedMultiplyAdd(code, Vector512.Create(*x), acc);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(byte* p)
    {
        if (Sse.IsSupported) Sse.Prefetch0(p + Ahead);
    }

    /// <summary>One qint4 panel: per unit (8 inputs x 16 columns) eight and/shift, eight vcvtdq2ps, 8R FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Int4Panel<TR>(DotWeight w, DotGemvRows x, int panel, float* y, float* bias)
        where TR : struct, ITileRows
    {
        int rows = TR.Rows, groups = w.Groups, units = w.UnitsPerGroup;
        long stride = x.Stride;
        byte* unit = w.Codes + panel * w.PanelBytes;
        float* x0 = x.Data, x1 = x0 + stride, x2 = x1 + stride;
        float* scales = w.Scales + (long)panel * groups * DotFormats.PanelColumns;
        float* shifts = w.Shifts + (long)panel * groups * DotFormats.PanelColumns;
        Vector512<float> t0 = default, t1 = default, t2 = default;
        for (int g = 0; g < groups; g++)
        {
            Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
            Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
            Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
            for (int u = 0; u < units; u++, unit += DotFormats.UnitBytes, x0 += 8, x1 += 8, x2 += 8)
            {
                Prefetch(unit);
                Vector512<uint> v = Vector512.Load((uint*)unit);
                Vector512<float> d = Code(v & Vector512.Create(0xFu));
                a00 = Fma(d, x0, a00);
                if (rows > 1) a10 = Fma(d, x1, a10);
                if (rows > 2) a20 = Fma(d, x2, a20);
                d = Code(v & Vector512.Create(0xF00u));
                a01 = Fma(d, x0 + 1, a01);
                if (rows > 1) a11 = Fma(d, x1 + 1, a11);
                if (rows > 2) a21 = Fma(d, x2 + 1, a21);
                d = Code(v & Vector512.Create(0xF0000u));
                a02 = Fma(d, x0 + 2, a02);
                if (rows > 1) a12 = Fma(d, x1 + 2, a12);
                if (rows > 2) a22 = Fma(d, x2 + 2, a22);
                d = Code(v & Vector512.Create(0xF000000u));
                a03 = Fma(d, x0 + 3, a03);
                if (rows > 1) a13 = Fma(d, x1 + 3, a13);
                if (rows > 2) a23 = Fma(d, x2 + 3, a23);
                d = Code(v & Vector512.Create(0xF0u));
                a00 = Fma(d, x0 + 4, a00);
                if (rows > 1) a10 = Fma(d, x1 + 4, a10);
                if (rows > 2) a20 = Fma(d, x2 + 4, a20);
                d = Code(v & Vector512.Create(0xF000u));
                a01 = Fma(d, x0 + 5, a01);
                if (rows > 1) a11 = Fma(d, x1 + 5, a11);
                if (rows > 2) a21 = Fma(d, x2 + 5, a21);
                d = Code(v & Vector512.Create(0xF00000u));
                a02 = Fma(d, x0 + 6, a02);
                if (rows > 1) a12 = Fma(d, x1 + 6, a12);
                if (rows > 2) a22 = Fma(d, x2 + 6, a22);
                d = Code(v >>> 28);
                a03 = Fma(d, x0 + 7, a03);
                if (rows > 1) a13 = Fma(d, x1 + 7, a13);
                if (rows > 2) a23 = Fma(d, x2 + 7, a23);
            }
            Vector512<float> scale = Vector512.Load(scales + g * DotFormats.PanelColumns);
            Vector512<float> shift = Vector512.Load(shifts + g * DotFormats.PanelColumns);
            float* sums = x.GroupSums + g;
            t0 = Avx512F.FusedMultiplyAdd((a00 + a01) + (a02 + a03), scale, t0);
            t0 = Avx512F.FusedMultiplyAdd(shift, Vector512.Create(-sums[0]), t0);
            if (rows > 1)
            {
                t1 = Avx512F.FusedMultiplyAdd((a10 + a11) + (a12 + a13), scale, t1);
                t1 = Avx512F.FusedMultiplyAdd(shift, Vector512.Create(-sums[groups]), t1);
            }
            if (rows > 2)
            {
                t2 = Avx512F.FusedMultiplyAdd((a20 + a21) + (a22 + a23), scale, t2);
                t2 = Avx512F.FusedMultiplyAdd(shift, Vector512.Create(-sums[2 * groups]), t2);
            }
        }
        Store(w, panel, 0, t0, y, bias);
        if (rows > 1) Store(w, panel, 1, t1, y, bias);
        if (rows > 2) Store(w, panel, 2, t2, y, bias);
    }

    /// <summary>
    /// One qint8 panel (one group): per unit (4 inputs x 16 columns) the stored code + 128 flipped to the signed
    /// code, each byte moved to the top byte (shift, and), so the lane holds code * 2^24; 2^-24 joins the scale.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Int8Panel<TR>(DotWeight w, DotGemvRows x, int panel, float* y, float* bias)
        where TR : struct, ITileRows
    {
        int rows = TR.Rows, units = w.Groups * w.UnitsPerGroup;
        long stride = x.Stride;
        byte* unit = w.Codes + panel * w.PanelBytes;
        float* x0 = x.Data, x1 = x0 + stride, x2 = x1 + stride;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector512<int> flip = Vector512.Create(unchecked((int)0x80808080)), top = Vector512.Create(unchecked((int)0xFF000000));
        for (int u = 0; u < units; u++, unit += DotFormats.UnitBytes, x0 += 4, x1 += 4, x2 += 4)
        {
            Prefetch(unit);
            Vector512<int> v = Vector512.Load((int*)unit) ^ flip;
            Vector512<float> d = Code(v << 24);
            a00 = Fma(d, x0, a00);
            if (rows > 1) a10 = Fma(d, x1, a10);
            if (rows > 2) a20 = Fma(d, x2, a20);
            d = Code((v << 16) & top);
            a01 = Fma(d, x0 + 1, a01);
            if (rows > 1) a11 = Fma(d, x1 + 1, a11);
            if (rows > 2) a21 = Fma(d, x2 + 1, a21);
            d = Code((v << 8) & top);
            a02 = Fma(d, x0 + 2, a02);
            if (rows > 1) a12 = Fma(d, x1 + 2, a12);
            if (rows > 2) a22 = Fma(d, x2 + 2, a22);
            d = Code(v & top);
            a03 = Fma(d, x0 + 3, a03);
            if (rows > 1) a13 = Fma(d, x1 + 3, a13);
            if (rows > 2) a23 = Fma(d, x2 + 3, a23);
        }
        Vector512<float> scale = Vector512.Load(w.Scales + (long)panel * w.Groups * DotFormats.PanelColumns)
            * Vector512.Create(1f / (1 << 24));
        Store(w, panel, 0, ((a00 + a01) + (a02 + a03)) * scale, y, bias);
        if (rows > 1) Store(w, panel, 1, ((a10 + a11) + (a12 + a13)) * scale, y, bias);
        if (rows > 2) Store(w, panel, 2, ((a20 + a21) + (a22 + a23)) * scale, y, bias);
    }

    /// <summary>Row <paramref name="r"/>'s 16 columns of <paramref name="panel"/> (+ bias), fewer in a last panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(DotWeight w, int panel, int r, Vector512<float> sums, float* y, float* bias)
    {
        int col0 = panel * DotFormats.PanelColumns;
        float* target = y + (long)r * w.N + col0;
        int cols = w.N - col0;
        if (cols >= DotFormats.PanelColumns)
        {
            (bias == null ? sums : sums + Vector512.Load(bias + col0)).Store(target);
            return;
        }
        float* lanes = stackalloc float[DotFormats.PanelColumns];
        sums.Store(lanes);
        for (int c = 0; c < cols; c++) target[c] = bias == null ? lanes[c] : lanes[c] + bias[col0 + c];
    }
}

/// <summary>The Dot GEMV over the thread pool: chunk i is a run of <see cref="PanelsPerChunk"/> panels.</summary>
internal sealed unsafe class DotGemvJob(DotWeight weight, DotGemvRows x, float* y, float* bias) : CpuJob
{
    /// <summary>Panels per chunk: about 8 chunks per thread (claimed dynamically), at least one panel.</summary>
    public int PanelsPerChunk { get; } = Math.Max(1, (weight.Panels + CpuParallel.Threads * 8 - 1) / (CpuParallel.Threads * 8));

    /// <summary>Chunks to run.</summary>
    public int Chunks => (weight.Panels + PanelsPerChunk - 1) / PanelsPerChunk;

    public override void Run(int chunk)
    {
        int panel0 = chunk * PanelsPerChunk;
        DotGemv.Run(weight, x, panel0, Math.Min(weight.Panels, panel0 + PanelsPerChunk), y, bias);
    }
}
