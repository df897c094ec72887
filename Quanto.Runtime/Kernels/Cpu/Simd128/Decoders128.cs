using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Quanto.Kernels.Cpu.Simd128;

/// <summary>Loads 16 codes of an 8-bit format as four float vectors.</summary>
internal interface IByteLoad128
{
    /// <summary>Codes p[0..16) as floats (before the per-channel scale), 4 per vector, in order.</summary>
    static abstract unsafe void Load(byte* p, out Vector128<float> f0, out Vector128<float> f1,
        out Vector128<float> f2, out Vector128<float> f3);
}

/// <summary>Sign-extends 16 bytes to four int32 vectors.</summary>
internal static class Widen128
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Signed(byte* p, out Vector128<int> i0, out Vector128<int> i1, out Vector128<int> i2,
        out Vector128<int> i3)
    {
        Vector128<sbyte> v = Vector128.Load((sbyte*)p);
        Vector128<short> lo = Vector128.WidenLower(v), hi = Vector128.WidenUpper(v);
        i0 = Vector128.WidenLower(lo);
        i1 = Vector128.WidenUpper(lo);
        i2 = Vector128.WidenLower(hi);
        i3 = Vector128.WidenUpper(hi);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Unsigned(byte* p, out Vector128<int> u0, out Vector128<int> u1, out Vector128<int> u2,
        out Vector128<int> u3)
    {
        Vector128<byte> v = Vector128.Load(p);
        Vector128<ushort> lo = Vector128.WidenLower(v), hi = Vector128.WidenUpper(v);
        u0 = Vector128.WidenLower(lo).AsInt32();
        u1 = Vector128.WidenUpper(lo).AsInt32();
        u2 = Vector128.WidenLower(hi).AsInt32();
        u3 = Vector128.WidenUpper(hi).AsInt32();
    }
}

/// <summary>A 64-code block of an 8-bit format.</summary>
internal readonly unsafe struct ByteDecoder128<TLoad> : IBlockDecoder<Vector128<float>> where TLoad : struct, IByteLoad128
{
    public static int BlockWeights => 64;

    public static int BlockBytes => 64;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Accumulate(byte* block, float* x, ref Vector128<float> acc0, ref Vector128<float> acc1)
    {
        for (int i = 0; i < 64; i += 16)
        {
            TLoad.Load(block + i, out var f0, out var f1, out var f2, out var f3);
            acc0 = Vector128.FusedMultiplyAdd(f0, Vector128.Load(x + i), acc0);
            acc1 = Vector128.FusedMultiplyAdd(f1, Vector128.Load(x + i + 4), acc1);
            acc0 = Vector128.FusedMultiplyAdd(f2, Vector128.Load(x + i + 8), acc0);
            acc1 = Vector128.FusedMultiplyAdd(f3, Vector128.Load(x + i + 12), acc1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Dequantize(byte* block, float* dst, Vector128<float> scale, Vector128<float> negShift)
    {
        for (int i = 0; i < 64; i += 16)
        {
            TLoad.Load(block + i, out var f0, out var f1, out var f2, out var f3);
            Vector128.FusedMultiplyAdd(f0, scale, negShift).Store(dst + i);
            Vector128.FusedMultiplyAdd(f1, scale, negShift).Store(dst + i + 4);
            Vector128.FusedMultiplyAdd(f2, scale, negShift).Store(dst + i + 8);
            Vector128.FusedMultiplyAdd(f3, scale, negShift).Store(dst + i + 12);
        }
    }
}

/// <summary>int8 codes.</summary>
internal readonly unsafe struct Int8Load128 : IByteLoad128
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load(byte* p, out Vector128<float> f0, out Vector128<float> f1, out Vector128<float> f2,
        out Vector128<float> f3)
    {
        Widen128.Signed(p, out var i0, out var i1, out var i2, out var i3);
        f0 = Vector128.ConvertToSingle(i0);
        f1 = Vector128.ConvertToSingle(i1);
        f2 = Vector128.ConvertToSingle(i2);
        f3 = Vector128.ConvertToSingle(i3);
    }
}

/// <summary>float8 codes, arithmetic decode (see Float8Decode512); the format is given by its constants.</summary>
internal static class Float8Load128
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Load(byte* p, int shift, int mask, float rescale, out Vector128<float> f0,
        out Vector128<float> f1, out Vector128<float> f2, out Vector128<float> f3)
    {
        Widen128.Signed(p, out var i0, out var i1, out var i2, out var i3);
        Vector128<int> m = Vector128.Create(mask);
        Vector128<float> s = Vector128.Create(rescale);
        f0 = ((i0 << shift) & m).AsSingle() * s;
        f1 = ((i1 << shift) & m).AsSingle() * s;
        f2 = ((i2 << shift) & m).AsSingle() * s;
        f3 = ((i3 << shift) & m).AsSingle() * s;
    }
}

/// <summary>float8 e4m3fn codes.</summary>
internal readonly unsafe struct E4M3FnLoad128 : IByteLoad128
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load(byte* p, out Vector128<float> f0, out Vector128<float> f1, out Vector128<float> f2,
        out Vector128<float> f3) =>
        Float8Load128.Load(p, 20, unchecked((int)0x87F00000), Float8Constants.E4M3Rescale, out f0, out f1, out f2, out f3);
}

/// <summary>float8 e4m3fnuz codes.</summary>
internal readonly unsafe struct E4M3FnuzLoad128 : IByteLoad128
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load(byte* p, out Vector128<float> f0, out Vector128<float> f1, out Vector128<float> f2,
        out Vector128<float> f3) =>
        Float8Load128.Load(p, 20, unchecked((int)0x87F00000), Float8Constants.E4M3FnuzRescale, out f0, out f1, out f2,
            out f3);
}

/// <summary>float8 e5m2 codes.</summary>
internal readonly unsafe struct E5M2Load128 : IByteLoad128
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load(byte* p, out Vector128<float> f0, out Vector128<float> f1, out Vector128<float> f2,
        out Vector128<float> f3) =>
        Float8Load128.Load(p, 21, unchecked((int)0x8FE00000), Float8Constants.E5M2Rescale, out f0, out f1, out f2, out f3);
}

/// <summary>int4: 16 bytes widen to four vectors u0..u3; u_j's low nibbles are codes 4j.., high ones 16 + 4j...</summary>
internal readonly unsafe struct Int4Decoder128 : IBlockDecoder<Vector128<float>>
{
    public static int BlockWeights => 32;

    public static int BlockBytes => 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Accumulate(byte* block, float* x, ref Vector128<float> acc0, ref Vector128<float> acc1)
    {
        Widen128.Unsigned(block, out var u0, out var u1, out var u2, out var u3);
        Vector128<int> mask = Vector128.Create(15);
        acc0 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(u0 & mask), Vector128.Load(x), acc0);
        acc1 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(u1 & mask), Vector128.Load(x + 4), acc1);
        acc0 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(u2 & mask), Vector128.Load(x + 8), acc0);
        acc1 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(u3 & mask), Vector128.Load(x + 12), acc1);
        acc0 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(u0 >>> 4), Vector128.Load(x + 16), acc0);
        acc1 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(u1 >>> 4), Vector128.Load(x + 20), acc1);
        acc0 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(u2 >>> 4), Vector128.Load(x + 24), acc0);
        acc1 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(u3 >>> 4), Vector128.Load(x + 28), acc1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Dequantize(byte* block, float* dst, Vector128<float> scale, Vector128<float> negShift)
    {
        Widen128.Unsigned(block, out var u0, out var u1, out var u2, out var u3);
        Vector128<int> mask = Vector128.Create(15);
        Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(u0 & mask), scale, negShift).Store(dst);
        Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(u1 & mask), scale, negShift).Store(dst + 4);
        Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(u2 & mask), scale, negShift).Store(dst + 8);
        Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(u3 & mask), scale, negShift).Store(dst + 12);
        Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(u0 >>> 4), scale, negShift).Store(dst + 16);
        Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(u1 >>> 4), scale, negShift).Store(dst + 20);
        Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(u2 >>> 4), scale, negShift).Store(dst + 24);
        Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(u3 >>> 4), scale, negShift).Store(dst + 28);
    }
}

/// <summary>int2: plane p (bits 2p, 2p+1) of u_j holds codes 16p + 4j...</summary>
internal readonly unsafe struct Int2Decoder128 : IBlockDecoder<Vector128<float>>
{
    public static int BlockWeights => 64;

    public static int BlockBytes => 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Accumulate(byte* block, float* x, ref Vector128<float> acc0, ref Vector128<float> acc1)
    {
        Widen128.Unsigned(block, out var u0, out var u1, out var u2, out var u3);
        Vector128<int> mask = Vector128.Create(3);
        for (int plane = 0; plane < 4; plane++)
        {
            int s = 2 * plane;
            float* xp = x + 16 * plane;
            acc0 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle((u0 >>> s) & mask), Vector128.Load(xp), acc0);
            acc1 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle((u1 >>> s) & mask), Vector128.Load(xp + 4), acc1);
            acc0 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle((u2 >>> s) & mask), Vector128.Load(xp + 8), acc0);
            acc1 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle((u3 >>> s) & mask), Vector128.Load(xp + 12), acc1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Dequantize(byte* block, float* dst, Vector128<float> scale, Vector128<float> negShift)
    {
        Widen128.Unsigned(block, out var u0, out var u1, out var u2, out var u3);
        Vector128<int> mask = Vector128.Create(3);
        for (int plane = 0; plane < 4; plane++)
        {
            int s = 2 * plane;
            float* d = dst + 16 * plane;
            Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle((u0 >>> s) & mask), scale, negShift).Store(d);
            Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle((u1 >>> s) & mask), scale, negShift).Store(d + 4);
            Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle((u2 >>> s) & mask), scale, negShift).Store(d + 8);
            Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle((u3 >>> s) & mask), scale, negShift).Store(d + 12);
        }
    }
}
