using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.W8A8;

/// <summary>
/// int8 x int8 dot products with exact int32 accumulation, a 4 x 2 tile (4 activation rows, 2 weight rows) per call
/// over <c>len</c> bytes (a multiple of 64). VNNI's vpdpbusd multiplies unsigned by signed bytes, so the VNNI
/// kernels take activations stored as x + 128 (unsigned) and the caller subtracts 128 * sum(w row); int32 wraps
/// modulo 2^32, so the corrected result is exact whenever the true sum fits int32 (K below 131072).
/// .NET 10 exposes vpdpbusd only on 128/256-bit registers (AvxVnni; its Avx10v1 needs AVX10, which Zen 4 lacks),
/// so the Vector512 path uses the 256-bit form where AVX-VNNI exists: Zen 4 splits 512-bit vpdpbusd into two
/// 256-bit halves anyway, so the throughput is the same.
/// The other kernels sign-extend both operands to int16 and use vpmaddwd (exact: |x*w + x*w| &lt;= 32768).
/// </summary>
internal static unsafe class W8A8Kernels
{
    /// <summary>
    /// One activation row x four weight rows (GEMV: with a single row, the 4 x 2 tile would spend 3/4 of its
    /// products on padding). AVX-VNNI.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Vnni256Row(byte* x, sbyte* w0, sbyte* w1, sbyte* w2, sbyte* w3, int len, int* result)
    {
        Vector256<int> c0 = default, c1 = default, c2 = default, c3 = default;
        long next = 4 * (w1 - w0); // the same place in the next four rows
        for (int k = 0; k < len; k += 32)
        {
            PrefetchRows(w0 + k + next, w1 - w0);
            Vector256<byte> a = Vector256.Load(x + k);
            c0 = AvxVnni.MultiplyWideningAndAdd(c0, a, Vector256.Load(w0 + k));
            c1 = AvxVnni.MultiplyWideningAndAdd(c1, a, Vector256.Load(w1 + k));
            c2 = AvxVnni.MultiplyWideningAndAdd(c2, a, Vector256.Load(w2 + k));
            c3 = AvxVnni.MultiplyWideningAndAdd(c3, a, Vector256.Load(w3 + k));
        }
        result[0] = Vector256.Sum(c0);
        result[1] = Vector256.Sum(c1);
        result[2] = Vector256.Sum(c2);
        result[3] = Vector256.Sum(c3);
    }

    /// <summary>One activation row x four weight rows, AVX-512 BW vpmaddwd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Madd512Row(byte* x, sbyte* w0, sbyte* w1, sbyte* w2, sbyte* w3, int len, int* result)
    {
        Vector512<int> c0 = default, c1 = default, c2 = default, c3 = default;
        long next = 4 * (w1 - w0); // the same place in the next four rows
        for (int k = 0; k < len; k += 32)
        {
            PrefetchRows(w0 + k + next, w1 - w0);
            Vector512<short> a = Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)x + k));
            c0 += Avx512BW.MultiplyAddAdjacent(a, Avx512BW.ConvertToVector512Int16(Vector256.Load(w0 + k)));
            c1 += Avx512BW.MultiplyAddAdjacent(a, Avx512BW.ConvertToVector512Int16(Vector256.Load(w1 + k)));
            c2 += Avx512BW.MultiplyAddAdjacent(a, Avx512BW.ConvertToVector512Int16(Vector256.Load(w2 + k)));
            c3 += Avx512BW.MultiplyAddAdjacent(a, Avx512BW.ConvertToVector512Int16(Vector256.Load(w3 + k)));
        }
        result[0] = Vector512.Sum(c0);
        result[1] = Vector512.Sum(c1);
        result[2] = Vector512.Sum(c2);
        result[3] = Vector512.Sum(c3);
    }

    /// <summary>One activation row x four weight rows, AVX2 vpmaddwd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Madd256Row(byte* x, sbyte* w0, sbyte* w1, sbyte* w2, sbyte* w3, int len, int* result)
    {
        Vector256<int> c0 = default, c1 = default, c2 = default, c3 = default;
        long next = 4 * (w1 - w0); // the same place in the next four rows
        for (int k = 0; k < len; k += 16)
        {
            PrefetchRows(w0 + k + next, w1 - w0);
            Vector256<short> a = Avx2.ConvertToVector256Int16((sbyte*)x + k);
            c0 += Avx2.MultiplyAddAdjacent(a, Avx2.ConvertToVector256Int16(w0 + k));
            c1 += Avx2.MultiplyAddAdjacent(a, Avx2.ConvertToVector256Int16(w1 + k));
            c2 += Avx2.MultiplyAddAdjacent(a, Avx2.ConvertToVector256Int16(w2 + k));
            c3 += Avx2.MultiplyAddAdjacent(a, Avx2.ConvertToVector256Int16(w3 + k));
        }
        result[0] = Vector256.Sum(c0);
        result[1] = Vector256.Sum(c1);
        result[2] = Vector256.Sum(c2);
        result[3] = Vector256.Sum(c3);
    }

    /// <summary>AVX-512 BW without VNNI: sign-extend 32 bytes to int16, vpmaddwd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Madd512(byte* x, int ldx, sbyte* w, int ldw, int len, int* tile)
    {
        Vector512<int> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector512<int> c20 = default, c21 = default, c30 = default, c31 = default;
        for (int k = 0; k < len; k += 32)
        {
            Vector512<short> w0 = Avx512BW.ConvertToVector512Int16(Vector256.Load(w + k));
            Vector512<short> w1 = Avx512BW.ConvertToVector512Int16(Vector256.Load(w + ldw + k));
            Vector512<short> a = Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)x + k));
            c00 += Avx512BW.MultiplyAddAdjacent(a, w0);
            c01 += Avx512BW.MultiplyAddAdjacent(a, w1);
            a = Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)x + ldx + k));
            c10 += Avx512BW.MultiplyAddAdjacent(a, w0);
            c11 += Avx512BW.MultiplyAddAdjacent(a, w1);
            a = Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)x + 2 * ldx + k));
            c20 += Avx512BW.MultiplyAddAdjacent(a, w0);
            c21 += Avx512BW.MultiplyAddAdjacent(a, w1);
            a = Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)x + 3 * ldx + k));
            c30 += Avx512BW.MultiplyAddAdjacent(a, w0);
            c31 += Avx512BW.MultiplyAddAdjacent(a, w1);
        }
        Store(tile, Vector512.Sum(c00), Vector512.Sum(c01), Vector512.Sum(c10), Vector512.Sum(c11),
            Vector512.Sum(c20), Vector512.Sum(c21), Vector512.Sum(c30), Vector512.Sum(c31));
    }

    /// <summary>AVX-VNNI: 32 byte-pairs per instruction.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Vnni256(byte* x, int ldx, sbyte* w, int ldw, int len, int* tile)
    {
        Vector256<int> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector256<int> c20 = default, c21 = default, c30 = default, c31 = default;
        for (int k = 0; k < len; k += 32)
        {
            Vector256<sbyte> w0 = Vector256.Load(w + k), w1 = Vector256.Load(w + ldw + k);
            Vector256<byte> a = Vector256.Load(x + k);
            c00 = AvxVnni.MultiplyWideningAndAdd(c00, a, w0);
            c01 = AvxVnni.MultiplyWideningAndAdd(c01, a, w1);
            a = Vector256.Load(x + ldx + k);
            c10 = AvxVnni.MultiplyWideningAndAdd(c10, a, w0);
            c11 = AvxVnni.MultiplyWideningAndAdd(c11, a, w1);
            a = Vector256.Load(x + 2 * ldx + k);
            c20 = AvxVnni.MultiplyWideningAndAdd(c20, a, w0);
            c21 = AvxVnni.MultiplyWideningAndAdd(c21, a, w1);
            a = Vector256.Load(x + 3 * ldx + k);
            c30 = AvxVnni.MultiplyWideningAndAdd(c30, a, w0);
            c31 = AvxVnni.MultiplyWideningAndAdd(c31, a, w1);
        }
        Store(tile, Vector256.Sum(c00), Vector256.Sum(c01), Vector256.Sum(c10), Vector256.Sum(c11),
            Vector256.Sum(c20), Vector256.Sum(c21), Vector256.Sum(c30), Vector256.Sum(c31));
    }

    /// <summary>AVX2 without VNNI: sign-extend 16 bytes to int16, vpmaddwd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Madd256(byte* x, int ldx, sbyte* w, int ldw, int len, int* tile)
    {
        Vector256<int> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector256<int> c20 = default, c21 = default, c30 = default, c31 = default;
        sbyte* xs = (sbyte*)x;
        for (int k = 0; k < len; k += 16)
        {
            Vector256<short> w0 = Avx2.ConvertToVector256Int16(w + k), w1 = Avx2.ConvertToVector256Int16(w + ldw + k);
            Vector256<short> a = Avx2.ConvertToVector256Int16(xs + k);
            c00 += Avx2.MultiplyAddAdjacent(a, w0);
            c01 += Avx2.MultiplyAddAdjacent(a, w1);
            a = Avx2.ConvertToVector256Int16(xs + ldx + k);
            c10 += Avx2.MultiplyAddAdjacent(a, w0);
            c11 += Avx2.MultiplyAddAdjacent(a, w1);
            a = Avx2.ConvertToVector256Int16(xs + 2 * ldx + k);
            c20 += Avx2.MultiplyAddAdjacent(a, w0);
            c21 += Avx2.MultiplyAddAdjacent(a, w1);
            a = Avx2.ConvertToVector256Int16(xs + 3 * ldx + k);
            c30 += Avx2.MultiplyAddAdjacent(a, w0);
            c31 += Avx2.MultiplyAddAdjacent(a, w1);
        }
        Store(tile, Vector256.Sum(c00), Vector256.Sum(c01), Vector256.Sum(c10), Vector256.Sum(c11),
            Vector256.Sum(c20), Vector256.Sum(c21), Vector256.Sum(c30), Vector256.Sum(c31));
    }

    /// <summary>Portable Vector128: widen to int16 then int32, multiply and add.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Widen128(byte* x, int ldx, sbyte* w, int ldw, int len, int* tile)
    {
        for (int r = 0; r < 4; r++)
        {
            sbyte* xr = (sbyte*)x + (long)r * ldx;
            for (int c = 0; c < 2; c++)
            {
                sbyte* wc = w + (long)c * ldw;
                Vector128<int> acc0 = default, acc1 = default;
                for (int k = 0; k < len; k += 16)
                {
                    Vector128<sbyte> a = Vector128.Load(xr + k), b = Vector128.Load(wc + k);
                    Vector128<short> p0 = Vector128.WidenLower(a) * Vector128.WidenLower(b);
                    Vector128<short> p1 = Vector128.WidenUpper(a) * Vector128.WidenUpper(b);
                    acc0 += Vector128.WidenLower(p0) + Vector128.WidenUpper(p0);
                    acc1 += Vector128.WidenLower(p1) + Vector128.WidenUpper(p1);
                }
                tile[r * 2 + c] = Vector128.Sum(acc0 + acc1);
            }
        }
    }

    /// <summary>Scalar.</summary>
    public static void Scalar(byte* x, int ldx, sbyte* w, int ldw, int len, int* tile)
    {
        for (int r = 0; r < 4; r++)
        {
            sbyte* xr = (sbyte*)x + (long)r * ldx;
            for (int c = 0; c < 2; c++)
            {
                sbyte* wc = w + (long)c * ldw;
                int acc = 0;
                for (int k = 0; k < len; k++) acc += xr[k] * wc[k];
                tile[r * 2 + c] = acc;
            }
        }
    }

    /// <summary>
    /// Prefetches the line at <paramref name="p"/> in each of four rows <paramref name="rowBytes"/> apart: rows are a few
    /// KiB, so the hardware prefetchers, which stop at 4 KiB pages, restart at each row (see GemvKernel).
    /// </summary>
    private static void PrefetchRows(sbyte* p, long rowBytes)
    {
        if (!Sse.IsSupported) return;
        Sse.Prefetch0(p);
        Sse.Prefetch0(p + rowBytes);
        Sse.Prefetch0(p + 2 * rowBytes);
        Sse.Prefetch0(p + 3 * rowBytes);
    }

    private static void Store(int* tile, int a, int b, int c, int d, int e, int f, int g, int h)
    {
        tile[0] = a; tile[1] = b; tile[2] = c; tile[3] = d;
        tile[4] = e; tile[5] = f; tile[6] = g; tile[7] = h;
    }
}
