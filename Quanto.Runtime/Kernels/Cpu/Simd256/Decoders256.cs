using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Simd256;

/// <summary>The 8-bit formats share one loop over a 64-code block; only the 8-code load differs.</summary>
internal interface IByteLoad256
{
    /// <summary>Eight codes at <paramref name="p"/> as floats (before the per-channel scale).</summary>
    static abstract unsafe Vector256<float> Load(byte* p);
}

/// <summary>A 64-code block of an 8-bit format.</summary>
internal readonly unsafe struct ByteDecoder256<TLoad> : IBlockDecoder<Vector256<float>> where TLoad : struct, IByteLoad256
{
    public static int BlockWeights => 64;

    public static int BlockBytes => 64;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Accumulate(byte* block, float* x, ref Vector256<float> acc0, ref Vector256<float> acc1)
    {
        for (int i = 0; i < 64; i += 16)
        {
            acc0 = Fma.MultiplyAdd(TLoad.Load(block + i), Vector256.Load(x + i), acc0);
            acc1 = Fma.MultiplyAdd(TLoad.Load(block + i + 8), Vector256.Load(x + i + 8), acc1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Dequantize(byte* block, float* dst, Vector256<float> scale, Vector256<float> negShift)
    {
        for (int i = 0; i < 64; i += 8) Fma.MultiplyAdd(TLoad.Load(block + i), scale, negShift).Store(dst + i);
    }
}

/// <summary>int8 codes (vpmovsxbd + vcvtdq2ps).</summary>
internal readonly unsafe struct Int8Load256 : IByteLoad256
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(byte* p) => Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32((sbyte*)p));
}

/// <summary>float8 e4m3fn codes, arithmetic decode (see Float8Decode512).</summary>
internal readonly unsafe struct E4M3FnLoad256 : IByteLoad256
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(byte* p) =>
        ((Avx2.ConvertToVector256Int32((sbyte*)p) << 20) & Vector256.Create(unchecked((int)0x87F00000))).AsSingle()
        * Vector256.Create(Float8Constants.E4M3Rescale);
}

/// <summary>float8 e4m3fnuz codes.</summary>
internal readonly unsafe struct E4M3FnuzLoad256 : IByteLoad256
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(byte* p) =>
        ((Avx2.ConvertToVector256Int32((sbyte*)p) << 20) & Vector256.Create(unchecked((int)0x87F00000))).AsSingle()
        * Vector256.Create(Float8Constants.E4M3FnuzRescale);
}

/// <summary>float8 e5m2 codes.</summary>
internal readonly unsafe struct E5M2Load256 : IByteLoad256
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(byte* p) =>
        ((Avx2.ConvertToVector256Int32((sbyte*)p) << 21) & Vector256.Create(unchecked((int)0x8FE00000))).AsSingle()
        * Vector256.Create(Float8Constants.E5M2Rescale);
}

/// <summary>
/// int4: bytes 0..7 zero-extended hold codes 0..7 (low nibbles) and 16..23 (high); bytes 8..15 hold 8..15, 24..31.
/// </summary>
internal readonly unsafe struct Int4Decoder256 : IBlockDecoder<Vector256<float>>
{
    public static int BlockWeights => 32;

    public static int BlockBytes => 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Accumulate(byte* block, float* x, ref Vector256<float> acc0, ref Vector256<float> acc1)
    {
        Vector256<int> mask = Vector256.Create(15);
        Vector256<int> v0 = Avx2.ConvertToVector256Int32(block);
        Vector256<int> v1 = Avx2.ConvertToVector256Int32(block + 8);
        acc0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(v0 & mask), Vector256.Load(x), acc0);
        acc1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(v1 & mask), Vector256.Load(x + 8), acc1);
        acc0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(v0 >>> 4), Vector256.Load(x + 16), acc0);
        acc1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(v1 >>> 4), Vector256.Load(x + 24), acc1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Dequantize(byte* block, float* dst, Vector256<float> scale, Vector256<float> negShift)
    {
        Vector256<int> mask = Vector256.Create(15);
        Vector256<int> v0 = Avx2.ConvertToVector256Int32(block);
        Vector256<int> v1 = Avx2.ConvertToVector256Int32(block + 8);
        Fma.MultiplyAdd(Avx.ConvertToVector256Single(v0 & mask), scale, negShift).Store(dst);
        Fma.MultiplyAdd(Avx.ConvertToVector256Single(v1 & mask), scale, negShift).Store(dst + 8);
        Fma.MultiplyAdd(Avx.ConvertToVector256Single(v0 >>> 4), scale, negShift).Store(dst + 16);
        Fma.MultiplyAdd(Avx.ConvertToVector256Single(v1 >>> 4), scale, negShift).Store(dst + 24);
    }
}

/// <summary>int2: vpermps reads the low 3 index bits, so the table i &amp; 3 extracts two bits without a mask.</summary>
internal readonly unsafe struct Int2Decoder256 : IBlockDecoder<Vector256<float>>
{
    public static int BlockWeights => 64;

    public static int BlockBytes => 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Table() => Vector256.Create(0f, 1f, 2f, 3f, 0f, 1f, 2f, 3f);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Accumulate(byte* block, float* x, ref Vector256<float> acc0, ref Vector256<float> acc1)
    {
        Vector256<float> table = Table();
        Vector256<int> v0 = Avx2.ConvertToVector256Int32(block);
        Vector256<int> v1 = Avx2.ConvertToVector256Int32(block + 8);
        for (int plane = 0; plane < 4; plane++)
        {
            acc0 = Fma.MultiplyAdd(Avx2.PermuteVar8x32(table, v0 >>> (2 * plane)), Vector256.Load(x + 16 * plane), acc0);
            acc1 = Fma.MultiplyAdd(Avx2.PermuteVar8x32(table, v1 >>> (2 * plane)), Vector256.Load(x + 16 * plane + 8), acc1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Dequantize(byte* block, float* dst, Vector256<float> scale, Vector256<float> negShift)
    {
        Vector256<float> table = Table();
        Vector256<int> v0 = Avx2.ConvertToVector256Int32(block);
        Vector256<int> v1 = Avx2.ConvertToVector256Int32(block + 8);
        for (int plane = 0; plane < 4; plane++)
        {
            Fma.MultiplyAdd(Avx2.PermuteVar8x32(table, v0 >>> (2 * plane)), scale, negShift).Store(dst + 16 * plane);
            Fma.MultiplyAdd(Avx2.PermuteVar8x32(table, v1 >>> (2 * plane)), scale, negShift).Store(dst + 16 * plane + 8);
        }
    }
}
