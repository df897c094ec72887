using Quanto.Kernels.Cpu.Scalar;
using Quanto.Kernels.Cpu.Simd128;
using Quanto.Kernels.Cpu.Simd256;
using Quanto.Kernels.Cpu.Simd512;

namespace Quanto.Kernels.Cpu;

/// <summary>
/// Picks the kernel for a (path, format, row count), in one place. Each kernel computes output columns [n0, n1) of
/// y = x · dequant(W)ᵀ + bias for all activation rows.
/// </summary>
internal static unsafe class CpuKernelDispatch
{
    /// <summary>Row counts from this up use the cache-blocked GEMM; below it, the streaming GEMV.</summary>
    public const int GemmMinRows = 4;

    public static delegate*<CpuPreparedWeight, CpuActivations, int, int, float*, float*, void> Select(
        CpuKernelPath path, CpuWeightFormat format, int rows)
    {
        bool gemm = rows >= GemmMinRows;
        return path switch
        {
            CpuKernelPath.Vector512 => gemm ? Gemm512For(format) : Gemv512For(format),
            CpuKernelPath.Vector256 => gemm ? Gemm256For(format) : Gemv256For(format),
            CpuKernelPath.Vector128 => gemm ? Gemm128For(format) : Gemv128For(format),
            _ => &ScalarKernels.Run,
        };
    }

    private static delegate*<CpuPreparedWeight, CpuActivations, int, int, float*, float*, void> Gemv512For(
        CpuWeightFormat format) => format switch
    {
        CpuWeightFormat.Int8 => &Gemv512.Run<Int8Decoder512>,
        CpuWeightFormat.Int4 => &Gemv512.Run<Int4Decoder512>,
        CpuWeightFormat.Int2 => &Gemv512.Run<Int2Decoder512>,
        CpuWeightFormat.Fp8E4M3Fn => &Gemv512.Run<E4M3FnDecoder512>,
        CpuWeightFormat.Fp8E5M2 => &Gemv512.Run<E5M2Decoder512>,
        _ => &Gemv512.Run<E4M3FnuzDecoder512>,
    };

    private static delegate*<CpuPreparedWeight, CpuActivations, int, int, float*, float*, void> Gemm512For(
        CpuWeightFormat format) => format switch
    {
        CpuWeightFormat.Int8 => &Gemm512.Run<Int8Decoder512>,
        CpuWeightFormat.Int4 => &Gemm512.Run<Int4Decoder512>,
        CpuWeightFormat.Int2 => &Gemm512.Run<Int2Decoder512>,
        CpuWeightFormat.Fp8E4M3Fn => &Gemm512.Run<E4M3FnDecoder512>,
        CpuWeightFormat.Fp8E5M2 => &Gemm512.Run<E5M2Decoder512>,
        _ => &Gemm512.Run<E4M3FnuzDecoder512>,
    };

    private static delegate*<CpuPreparedWeight, CpuActivations, int, int, float*, float*, void> Gemv256For(
        CpuWeightFormat format) => format switch
    {
        CpuWeightFormat.Int8 => &Gemv256.Run<ByteDecoder256<Int8Load256>>,
        CpuWeightFormat.Int4 => &Gemv256.Run<Int4Decoder256>,
        CpuWeightFormat.Int2 => &Gemv256.Run<Int2Decoder256>,
        CpuWeightFormat.Fp8E4M3Fn => &Gemv256.Run<ByteDecoder256<E4M3FnLoad256>>,
        CpuWeightFormat.Fp8E5M2 => &Gemv256.Run<ByteDecoder256<E5M2Load256>>,
        _ => &Gemv256.Run<ByteDecoder256<E4M3FnuzLoad256>>,
    };

    private static delegate*<CpuPreparedWeight, CpuActivations, int, int, float*, float*, void> Gemm256For(
        CpuWeightFormat format) => format switch
    {
        CpuWeightFormat.Int8 => &Gemm256.Run<ByteDecoder256<Int8Load256>>,
        CpuWeightFormat.Int4 => &Gemm256.Run<Int4Decoder256>,
        CpuWeightFormat.Int2 => &Gemm256.Run<Int2Decoder256>,
        CpuWeightFormat.Fp8E4M3Fn => &Gemm256.Run<ByteDecoder256<E4M3FnLoad256>>,
        CpuWeightFormat.Fp8E5M2 => &Gemm256.Run<ByteDecoder256<E5M2Load256>>,
        _ => &Gemm256.Run<ByteDecoder256<E4M3FnuzLoad256>>,
    };

    private static delegate*<CpuPreparedWeight, CpuActivations, int, int, float*, float*, void> Gemv128For(
        CpuWeightFormat format) => format switch
    {
        CpuWeightFormat.Int8 => &Gemv128.Run<ByteDecoder128<Int8Load128>>,
        CpuWeightFormat.Int4 => &Gemv128.Run<Int4Decoder128>,
        CpuWeightFormat.Int2 => &Gemv128.Run<Int2Decoder128>,
        CpuWeightFormat.Fp8E4M3Fn => &Gemv128.Run<ByteDecoder128<E4M3FnLoad128>>,
        CpuWeightFormat.Fp8E5M2 => &Gemv128.Run<ByteDecoder128<E5M2Load128>>,
        _ => &Gemv128.Run<ByteDecoder128<E4M3FnuzLoad128>>,
    };

    private static delegate*<CpuPreparedWeight, CpuActivations, int, int, float*, float*, void> Gemm128For(
        CpuWeightFormat format) => format switch
    {
        CpuWeightFormat.Int8 => &Gemm128.Run<ByteDecoder128<Int8Load128>>,
        CpuWeightFormat.Int4 => &Gemm128.Run<Int4Decoder128>,
        CpuWeightFormat.Int2 => &Gemm128.Run<Int2Decoder128>,
        CpuWeightFormat.Fp8E4M3Fn => &Gemm128.Run<ByteDecoder128<E4M3FnLoad128>>,
        CpuWeightFormat.Fp8E5M2 => &Gemm128.Run<ByteDecoder128<E5M2Load128>>,
        _ => &Gemm128.Run<ByteDecoder128<E4M3FnuzLoad128>>,
    };
}
