using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// Decodes a block of a <see cref="DotWeight"/> (up to four panels, a run of whole 64-byte units) into the float32
/// GEMM's layout: per input k one row of <see cref="FloatGemmJob.BlockColumns"/> floats, column p * 16 + c holding
/// the dequantized weight of panel p's column c, computed as the weight-only kernels compute it: one fused
/// code * scale - shift (qint8: code * scale) per weight, so the values equal theirs bit for bit. Done once per block
/// and reused by every activation row.
/// </summary>
internal static unsafe class FloatPanels
{
    /// <summary>True when this CPU runs the float GEMM on <paramref name="path"/>: Vector512 with AVX-512 F,
    /// Vector256 with AVX2 and FMA.</summary>
    public static bool Runs(CpuKernelPath path) => path switch
    {
        CpuKernelPath.Vector512 => Avx512F.IsSupported,
        CpuKernelPath.Vector256 => Avx2.IsSupported && Fma.IsSupported,
        _ => false,
    };

    /// <summary>Writes panels [panel0, panel0 + panels) x units [unit0, unit0 + units) to <paramref name="target"/>:
    /// input (unit - unit0) * UnitK + i at row i, <see cref="FloatGemmJob.BlockColumns"/> floats per row, with the
    /// vectors of <paramref name="path"/> (Vector512 or Vector256 where the CPU runs it, else scalar code; every
    /// width writes the same values).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Decode(DotWeight weight, int panel0, int panels, int unit0, int units, float* target,
        CpuKernelPath path)
    {
        bool wide = path == CpuKernelPath.Vector512 && Runs(path), half = path == CpuKernelPath.Vector256 && Runs(path);
        DotFormat format = weight.Format;
        int unitK = format.UnitK();
        for (int p = 0; p < panels; p++)
        {
            int panel = panel0 + p;
            byte* unit = weight.Codes + panel * weight.PanelBytes + (long)unit0 * DotFormats.UnitBytes;
            float* rows = target + p * DotFormats.PanelColumns;
            for (int u = 0; u < units; u++, unit += DotFormats.UnitBytes, rows += unitK * FloatGemmJob.BlockColumns)
            {
                int group = format.IsSigned() ? 0 : (unit0 + u) / weight.UnitsPerGroup;
                long at = ((long)panel * weight.Groups + group) * DotFormats.PanelColumns;
                float* scales = weight.Scales + at;
                float* shifts = weight.Shifts == null ? null : weight.Shifts + at;
                if (wide) DecodeUnit(format, unit, scales, shifts, rows);
                else if (half) DecodeUnit256(format, unit, scales, shifts, rows);
                else DecodeUnitScalar(format, unit, scales, shifts, rows);
            }
        }
    }

    /// <summary>One unit: input i of its UnitK to <paramref name="rows"/> + i * BlockColumns, 16 columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void DecodeUnit(DotFormat format, byte* unit, float* scales, float* shifts, float* rows)
    {
        const int Stride = FloatGemmJob.BlockColumns;
        Vector512<float> scale = Vector512.Load(scales);
        if (format == DotFormat.Int8)
        {
            // Stored code + 128 in byte i of each column's dword: flip to signed, then byte i to the top and back
            // with an arithmetic shift gives the signed code; exact in float, one rounding in the product.
            Vector512<int> signed = Vector512.Load((int*)unit) ^ Vector512.Create(unchecked((int)0x80808080));
            Vector512<float> zero = Vector512<float>.Zero;
            Avx512F.FusedMultiplyAdd(Code8(signed << 24), scale, zero).Store(rows);
            Avx512F.FusedMultiplyAdd(Code8(signed << 16), scale, zero).Store(rows + Stride);
            Avx512F.FusedMultiplyAdd(Code8(signed << 8), scale, zero).Store(rows + 2 * Stride);
            Avx512F.FusedMultiplyAdd(Code8(signed), scale, zero).Store(rows + 3 * Stride);
            return;
        }
        Vector512<float> negShift = -Vector512.Load(shifts);
        Vector512<uint> v = Vector512.Load((uint*)unit);
        if (format == DotFormat.Int4)
        {
            // Byte i holds inputs i (low nibble) and 4 + i; vpermps reads the low 4 bits of each index, so permuting
            // the table 0..15 by the shifted dword converts one nibble without a mask.
            Vector512<float> table = Vector512<float>.Indices;
            for (int i = 0; i < 4; i++)
            {
                Vector512<uint> bytes = v >>> (8 * i);
                Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, bytes.AsInt32()), scale, negShift)
                    .Store(rows + i * Stride);
                Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, (bytes >>> 4).AsInt32()), scale, negShift)
                    .Store(rows + (4 + i) * Stride);
            }
            return;
        }
        // qint2: byte i holds inputs i, 4 + i, 8 + i, 12 + i in bits 0-1, 2-3, 4-5, 6-7; a 4-bit index holds two
        // codes, which the tables i & 3 and i >> 2 pick out.
        Vector512<float> low = Vector512.Create(0f, 1f, 2f, 3f, 0f, 1f, 2f, 3f, 0f, 1f, 2f, 3f, 0f, 1f, 2f, 3f);
        Vector512<float> high = Vector512.Create(0f, 0f, 0f, 0f, 1f, 1f, 1f, 1f, 2f, 2f, 2f, 2f, 3f, 3f, 3f, 3f);
        for (int i = 0; i < 4; i++)
        {
            Vector512<int> a = (v >>> (8 * i)).AsInt32(), b = (v >>> (8 * i + 4)).AsInt32();
            Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(low, a), scale, negShift).Store(rows + i * Stride);
            Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(high, a), scale, negShift).Store(rows + (4 + i) * Stride);
            Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(low, b), scale, negShift).Store(rows + (8 + i) * Stride);
            Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(high, b), scale, negShift).Store(rows + (12 + i) * Stride);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Code8(Vector512<int> top) => Avx512F.ConvertToVector512Single(top >> 24);

    /// <summary>
    /// <see cref="DecodeUnit"/> on AVX2: each half of the unit (columns 0-7, 8-15) in one ymm; a code is moved to
    /// the bottom of its lane and masked (vpermps reads only 3 index bits at this width), then converted exactly.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void DecodeUnit256(DotFormat format, byte* unit, float* scales, float* shifts, float* rows)
    {
        const int Stride = FloatGemmJob.BlockColumns;
        int bits = format.Bits(), codes = format.UnitK() / 4, mask = (1 << bits) - 1;
        for (int h = 0; h < 2; h++)
        {
            int offset = 8 * h;
            Vector256<float> scale = Vector256.Load(scales + offset);
            Vector256<float> negShift = shifts == null ? Vector256<float>.Zero : -Vector256.Load(shifts + offset);
            Vector256<int> v = Vector256.Load((int*)(unit + 32 * h));
            if (format == DotFormat.Int8)
            {
                Vector256<int> signed = v ^ Vector256.Create(unchecked((int)0x80808080));
                for (int i = 0; i < 4; i++)
                {
                    Vector256<float> code = Vector256.ConvertToSingle((signed << (24 - 8 * i)) >> 24);
                    Fma.MultiplyAdd(code, scale, negShift).Store(rows + i * Stride + offset);
                }
                continue;
            }
            // Byte i of a lane holds inputs i + 4j in bits [bits * j, bits * (j + 1)), j < 8 / bits.
            for (int i = 0; i < 4; i++)
            {
                for (int j = 0; j < codes; j++)
                {
                    Vector256<int> code = (v >>> (8 * i + bits * j)) & Vector256.Create(mask);
                    Fma.MultiplyAdd(Vector256.ConvertToSingle(code), scale, negShift)
                        .Store(rows + (4 * j + i) * Stride + offset);
                }
            }
        }
    }

    /// <summary>The same in scalar code (CPUs without AVX2; tests use it).</summary>
    private static void DecodeUnitScalar(DotFormat format, byte* unit, float* scales, float* shifts, float* rows)
    {
        for (int i = 0; i < format.UnitK(); i++)
        {
            for (int c = 0; c < DotFormats.PanelColumns; c++)
            {
                int code = format.Code(unit, c, i) - (format.IsSigned() ? 128 : 0);
                rows[i * FloatGemmJob.BlockColumns + c] = shifts == null
                    ? MathF.FusedMultiplyAdd(code, scales[c], -0f)
                    : MathF.FusedMultiplyAdd(code, scales[c], -shifts[c]);
            }
        }
    }
}
