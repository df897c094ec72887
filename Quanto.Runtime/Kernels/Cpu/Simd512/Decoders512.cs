using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Simd512;

/// <summary>The 8-bit formats share one loop over a 64-code block; only the 16-code load differs.</summary>
internal interface IByteLoad512
{
    /// <summary>Sixteen codes at <paramref name="p"/> as floats (before the per-channel scale).</summary>
    static abstract unsafe Vector512<float> Load(byte* p);
}

/// <summary>A 64-code block of an 8-bit format: 4 vectors.</summary>
internal readonly unsafe struct ByteDecoder512<TLoad> : IBlockDecoder<Vector512<float>> where TLoad : struct, IByteLoad512
{
    public static int BlockWeights => 64;

    public static int BlockBytes => 64;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Accumulate(byte* block, float* x, ref Vector512<float> acc0, ref Vector512<float> acc1)
    {
        acc0 = Avx512F.FusedMultiplyAdd(TLoad.Load(block), Vector512.Load(x), acc0);
        acc1 = Avx512F.FusedMultiplyAdd(TLoad.Load(block + 16), Vector512.Load(x + 16), acc1);
        acc0 = Avx512F.FusedMultiplyAdd(TLoad.Load(block + 32), Vector512.Load(x + 32), acc0);
        acc1 = Avx512F.FusedMultiplyAdd(TLoad.Load(block + 48), Vector512.Load(x + 48), acc1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Dequantize(byte* block, float* dst, Vector512<float> scale, Vector512<float> negShift)
    {
        for (int i = 0; i < 64; i += 16) Avx512F.FusedMultiplyAdd(TLoad.Load(block + i), scale, negShift).Store(dst + i);
    }
}

/// <summary>int8 codes (vpmovsxbd + vcvtdq2ps).</summary>
internal readonly unsafe struct Int8Load512 : IByteLoad512
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(byte* p) =>
        Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)p)));
}

/// <summary>
/// float8 codes, decoded arithmetically (no table): the 7 magnitude bits are shifted under a float32's exponent and
/// mantissa and the sign moved to bit 31, which is the value times 2^(bias - 127), subnormals included; one multiply
/// by 2^(127 - bias) rescales it exactly. NaN/infinity codes are not decoded (quantizers saturate, never emit them).
/// </summary>
internal static unsafe class Float8Decode512
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(byte* p, [ConstantExpected] byte shift, int mask, float rescale)
    {
        Vector512<int> v = Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)p));
        Vector512<int> bits = Avx512F.ShiftLeftLogical(v, shift) & Vector512.Create(mask);
        return bits.AsSingle() * Vector512.Create(rescale);
    }
}

/// <summary>float8 e4m3fn codes.</summary>
internal readonly unsafe struct E4M3FnLoad512 : IByteLoad512
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(byte* p) =>
        Float8Decode512.Load(p, 20, unchecked((int)0x87F00000), Float8Constants.E4M3Rescale);
}

/// <summary>float8 e4m3fnuz codes (bias 8).</summary>
internal readonly unsafe struct E4M3FnuzLoad512 : IByteLoad512
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(byte* p) =>
        Float8Decode512.Load(p, 20, unchecked((int)0x87F00000), Float8Constants.E4M3FnuzRescale);
}

/// <summary>float8 e5m2 codes.</summary>
internal readonly unsafe struct E5M2Load512 : IByteLoad512
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(byte* p) =>
        Float8Decode512.Load(p, 21, unchecked((int)0x8FE00000), Float8Constants.E5M2Rescale);
}

/// <summary>
/// int4 codes: 32 per 16-byte block. vpermps reads only the low 4 bits of each index, so permuting the table
/// {0, 1, ..., 15} by the zero-extended byte converts its low nibble to float without a mask.
/// </summary>
internal readonly unsafe struct Int4Decoder512 : IBlockDecoder<Vector512<float>>
{
    public static int BlockWeights => 32;

    public static int BlockBytes => 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Accumulate(byte* block, float* x, ref Vector512<float> acc0, ref Vector512<float> acc1)
    {
        Vector512<int> v = Avx512F.ConvertToVector512Int32(Vector128.Load(block));
        Vector512<float> table = Vector512<float>.Indices;
        acc0 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, v), Vector512.Load(x), acc0);
        acc1 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, v >>> 4), Vector512.Load(x + 16), acc1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Dequantize(byte* block, float* dst, Vector512<float> scale, Vector512<float> negShift)
    {
        Vector512<int> v = Avx512F.ConvertToVector512Int32(Vector128.Load(block));
        Vector512<float> table = Vector512<float>.Indices;
        Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, v), scale, negShift).Store(dst);
        Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, v >>> 4), scale, negShift).Store(dst + 16);
    }
}

/// <summary>
/// int2 codes: 64 per 16-byte block. vpermps reads index bits 0-3, so the table i &amp; 3 extracts bits 0-1 and the
/// table i &gt;&gt; 2 extracts bits 2-3 with no shift; one shift by 4 serves the other two planes.
/// </summary>
internal readonly unsafe struct Int2Decoder512 : IBlockDecoder<Vector512<float>>
{
    public static int BlockWeights => 64;

    public static int BlockBytes => 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Low() =>
        Vector512.Create(0f, 1f, 2f, 3f, 0f, 1f, 2f, 3f, 0f, 1f, 2f, 3f, 0f, 1f, 2f, 3f);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> High() =>
        Vector512.Create(0f, 0f, 0f, 0f, 1f, 1f, 1f, 1f, 2f, 2f, 2f, 2f, 3f, 3f, 3f, 3f);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Accumulate(byte* block, float* x, ref Vector512<float> acc0, ref Vector512<float> acc1)
    {
        Vector512<int> v = Avx512F.ConvertToVector512Int32(Vector128.Load(block));
        Vector512<int> v4 = v >>> 4;
        Vector512<float> low = Low(), high = High();
        acc0 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(low, v), Vector512.Load(x), acc0);
        acc1 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(high, v), Vector512.Load(x + 16), acc1);
        acc0 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(low, v4), Vector512.Load(x + 32), acc0);
        acc1 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(high, v4), Vector512.Load(x + 48), acc1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Dequantize(byte* block, float* dst, Vector512<float> scale, Vector512<float> negShift)
    {
        Vector512<int> v = Avx512F.ConvertToVector512Int32(Vector128.Load(block));
        Vector512<int> v4 = v >>> 4;
        Vector512<float> low = Low(), high = High();
        Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(low, v), scale, negShift).Store(dst);
        Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(high, v), scale, negShift).Store(dst + 16);
        Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(low, v4), scale, negShift).Store(dst + 32);
        Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(high, v4), scale, negShift).Store(dst + 48);
    }
}
