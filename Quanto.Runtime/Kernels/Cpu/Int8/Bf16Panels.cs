using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// Decodes a block of a <see cref="DotWeight"/> (up to four panels, a run of whole 64-byte units) into the bf16 GEMM
/// kernels' layout (<see cref="Bf16GemmArgs"/>): every code as its exact bfloat16, in input pairs, plus the block's
/// scales and shifts per kernel group. A kernel group is a weight group for qint4/qint2; qint8 has one scale per
/// column, so a block of it is one kernel group. Done once per block and reused by every activation row.
/// </summary>
internal static unsafe class Bf16Panels
{
    /// <summary>bfloat16 of 0..15 (the 2/4-bit code table).</summary>
    private static readonly Vector512<ushort> Table = Vector512.Create(
        (ushort)0x0000, 0x3F80, 0x4000, 0x4040, 0x4080, 0x40A0, 0x40C0, 0x40E0,
        0x4100, 0x4110, 0x4120, 0x4130, 0x4140, 0x4150, 0x4160, 0x4170,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

    /// <summary>Bytes b0 b2 b1 b3 in each 32-bit lane: word 2j then holds the codes of inputs i and i + 1 in step.</summary>
    private static readonly Vector512<byte> Interleave = Vector512.Create(
        (byte)0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15,
        0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15,
        0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15,
        0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15);

    /// <summary>True where the vector decoders run (AVX-512 BW; every CPU with AVX512_BF16 has it).</summary>
    public static bool IsAccelerated => Avx512BW.IsSupported;

    /// <summary>Input pairs per unit.</summary>
    public static int PairsPerUnit(this DotFormat format) => format.UnitK() / 2;

    /// <summary>Kernel groups and pairs per group of a block of <paramref name="units"/> units (qint4/qint2: whole
    /// groups).</summary>
    public static (int Groups, int PairsPerGroup) Grouping(DotWeight weight, int units) =>
        weight.Format.IsSigned()
            ? (1, units * weight.Format.PairsPerUnit())
            : (units / weight.UnitsPerGroup, weight.UnitsPerGroup * weight.Format.PairsPerUnit());

    /// <summary>Writes panels [panel0, panel0 + panels) x units [unit0, unit0 + units) of each panel's unit run to
    /// <paramref name="target"/>, and their kernel groups' scales (and shifts) to <paramref name="scales"/>
    /// (<paramref name="shifts"/>), [group][panel] x 16 floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Decode(DotWeight weight, int panel0, int panels, int unit0, int units, ushort* target,
        float* scales, float* shifts)
    {
        DotFormat format = weight.Format;
        int pairsPerUnit = format.PairsPerUnit();
        for (int p = 0; p < panels; p++)
        {
            byte* unit = weight.Codes + (panel0 + p) * weight.PanelBytes + (long)unit0 * DotFormats.UnitBytes;
            ushort* pairs = target + p * 32;
            for (int u = 0; u < units; u++, unit += DotFormats.UnitBytes, pairs += pairsPerUnit * panels * 32)
            {
                if (IsAccelerated) DecodeUnit(format, unit, pairs, panels * 32);
                else DecodeUnitScalar(format, unit, pairs, panels * 32);
            }
        }
        (int groups, _) = Grouping(weight, units);
        int group0 = format.IsSigned() ? 0 : unit0 / weight.UnitsPerGroup;
        for (int g = 0; g < groups; g++)
        {
            for (int p = 0; p < panels; p++)
            {
                long from = ((long)(panel0 + p) * weight.Groups + group0 + g) * DotFormats.PanelColumns;
                long to = ((long)g * panels + p) * DotFormats.PanelColumns;
                new ReadOnlySpan<float>(weight.Scales + from, DotFormats.PanelColumns)
                    .CopyTo(new Span<float>(scales + to, DotFormats.PanelColumns));
                if (shifts == null) continue;
                new ReadOnlySpan<float>(weight.Shifts + from, DotFormats.PanelColumns)
                    .CopyTo(new Span<float>(shifts + to, DotFormats.PanelColumns));
            }
        }
    }

    /// <summary>One unit's pairs to <paramref name="pairs"/> + q * <paramref name="pairStride"/> words.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void DecodeUnit(DotFormat format, byte* unit, ushort* pairs, int pairStride)
    {
        Vector512<byte> raw = Vector512.Load(unit);
        if (format == DotFormat.Int8)
        {
            // Stored code + 128: flip to signed, widen to int32, convert (exact); bf16 = the float's upper half.
            Vector512<sbyte> signed = (raw ^ Vector512.Create((byte)0x80)).AsSByte();
            Vector512<uint> low = Vector512.Create(Bf16Words(signed.GetLower().GetLower()),
                Bf16Words(signed.GetLower().GetUpper())).AsUInt32();
            Vector512<uint> high = Vector512.Create(Bf16Words(signed.GetUpper().GetLower()),
                Bf16Words(signed.GetUpper().GetUpper())).AsUInt32();
            // Words in byte order: dword d = column d / 2, inputs 2 (d % 2), + 1; even dwords: pair 0, odd: pair 1.
            Avx512F.PermuteVar16x32x2(low, Vector512.CreateSequence(0u, 2u), high).Store((uint*)pairs);
            Avx512F.PermuteVar16x32x2(low, Vector512.CreateSequence(1u, 2u), high).Store((uint*)(pairs + pairStride));
            return;
        }
        Vector512<ushort> words = Avx512BW.Shuffle(raw, Interleave).AsUInt16();
        if (format == DotFormat.Int4)
        {
            // Word 2j = b0 | b2 << 8, word 2j + 1 = b1 | b3 << 8; byte i holds inputs i (low nibble) and i + 4.
            Vector512<ushort> mask = Vector512.Create((ushort)0xF);
            Lookup(words & mask).Store(pairs);
            Lookup((words >> 8) & mask).Store(pairs + pairStride);
            Lookup((words >> 4) & mask).Store(pairs + 2 * pairStride);
            Lookup(words >> 12).Store(pairs + 3 * pairStride);
            return;
        }
        // qint2: byte i holds inputs i, 4 + i, 8 + i, 12 + i; shift s of the word gives pair (s / 2 % 4) * 2 + s / 8.
        Vector512<ushort> two = Vector512.Create((ushort)3);
        for (int s = 0; s < 16; s += 2)
            Lookup((words >> s) & two).Store(pairs + (s / 2 % 4 * 2 + s / 8) * pairStride);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ushort> Lookup(Vector512<ushort> codes) => Avx512BW.PermuteVar32x16(Table, codes);

    /// <summary>16 signed bytes as 16 bf16 words.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<ushort> Bf16Words(Vector128<sbyte> codes) =>
        Avx512F.ConvertToVector256UInt16(Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(codes))
            .AsUInt32() >> 16);

    /// <summary>The same for CPUs without AVX-512 BW (no assembled bf16 kernel runs there; tests use it).</summary>
    private static void DecodeUnitScalar(DotFormat format, byte* unit, ushort* pairs, int pairStride)
    {
        for (int q = 0; q < format.PairsPerUnit(); q++)
        {
            for (int c = 0; c < DotFormats.PanelColumns; c++)
            {
                for (int i = 0; i < 2; i++)
                {
                    int code = format.Code(unit, c, 2 * q + i) - (format.IsSigned() ? 128 : 0);
                    pairs[q * pairStride + 2 * c + i] = (ushort)Bf16Activations.Round(code);
                }
            }
        }
    }
}
