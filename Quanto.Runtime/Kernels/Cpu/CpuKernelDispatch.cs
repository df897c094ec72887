using System.Runtime.Intrinsics;
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
            CpuKernelPath.Vector512 => For<Vector512<float>, Width512, ByteDecoder512<Int8Load512>, Int4Decoder512,
                Int2Decoder512, ByteDecoder512<E4M3FnLoad512>, ByteDecoder512<E5M2Load512>,
                ByteDecoder512<E4M3FnuzLoad512>>(format, gemm),
            CpuKernelPath.Vector256 => For<Vector256<float>, Width256, ByteDecoder256<Int8Load256>, Int4Decoder256,
                Int2Decoder256, ByteDecoder256<E4M3FnLoad256>, ByteDecoder256<E5M2Load256>,
                ByteDecoder256<E4M3FnuzLoad256>>(format, gemm),
            CpuKernelPath.Vector128 => For<Vector128<float>, Width128, ByteDecoder128<Int8Load128>, Int4Decoder128,
                Int2Decoder128, ByteDecoder128<E4M3FnLoad128>, ByteDecoder128<E5M2Load128>,
                ByteDecoder128<E4M3FnuzLoad128>>(format, gemm),
            _ => &ScalarKernels.Run,
        };
    }

    /// <summary>The GEMM or GEMV driver of one width, specialised for the decoder of <paramref name="format"/>.</summary>
    private static delegate*<CpuPreparedWeight, CpuActivations, int, int, float*, float*, void> For<TVec, TW,
        TInt8, TInt4, TInt2, TE4M3Fn, TE5M2, TE4M3Fnuz>(CpuWeightFormat format, bool gemm)
        where TVec : unmanaged
        where TW : struct, ISimdWidth<TVec>
        where TInt8 : struct, IBlockDecoder<TVec>
        where TInt4 : struct, IBlockDecoder<TVec>
        where TInt2 : struct, IBlockDecoder<TVec>
        where TE4M3Fn : struct, IBlockDecoder<TVec>
        where TE5M2 : struct, IBlockDecoder<TVec>
        where TE4M3Fnuz : struct, IBlockDecoder<TVec> => (format, gemm) switch
    {
        (CpuWeightFormat.Int8, true) => &GemmKernel.Run<TVec, TW, TInt8>,
        (CpuWeightFormat.Int4, true) => &GemmKernel.Run<TVec, TW, TInt4>,
        (CpuWeightFormat.Int2, true) => &GemmKernel.Run<TVec, TW, TInt2>,
        (CpuWeightFormat.Fp8E4M3Fn, true) => &GemmKernel.Run<TVec, TW, TE4M3Fn>,
        (CpuWeightFormat.Fp8E5M2, true) => &GemmKernel.Run<TVec, TW, TE5M2>,
        (_, true) => &GemmKernel.Run<TVec, TW, TE4M3Fnuz>,
        (CpuWeightFormat.Int8, false) => &GemvKernel.Run<TVec, TW, TInt8>,
        (CpuWeightFormat.Int4, false) => &GemvKernel.Run<TVec, TW, TInt4>,
        (CpuWeightFormat.Int2, false) => &GemvKernel.Run<TVec, TW, TInt2>,
        (CpuWeightFormat.Fp8E4M3Fn, false) => &GemvKernel.Run<TVec, TW, TE4M3Fn>,
        (CpuWeightFormat.Fp8E5M2, false) => &GemvKernel.Run<TVec, TW, TE5M2>,
        (_, false) => &GemvKernel.Run<TVec, TW, TE4M3Fnuz>,
    };
}
