using System.Runtime.InteropServices;
using Iced.Intel;
using Quanto.Kernels.Cpu.Int8;
using static Iced.Intel.AssemblerRegisters;

namespace Quanto.Kernels.Cpu.Jit;

/// <summary>
/// The bf16 panel kernels as AVX-512 BF16 machine code, assembled at run time with Iced (.NET 10 has no intrinsic
/// for vdpbf16ps). The weights stay in their int8/int4/int2 panel layout (Int8/DotWeight.cs); each unit is decoded in
/// registers into bf16 code planes, which bf16 holds exactly: 2/4-bit codes through a 16-entry vpermw table, qint8
/// codes through int32 -> float32, whose upper half is the exact bf16. One vdpbf16ps per plane and row adds two
/// products per column to a float32 accumulator; per group the sum is scaled (and shifted) as in
/// <see cref="Bf16Reference"/>. Registers and ABI as <see cref="DotAssembler"/>; checked against the reference on
/// first use in Debug builds.
/// </summary>
internal static unsafe class Bf16Assembler
{
    private static readonly AssembledKernels Kernels =
        new("bf16-asm", "bf16", Assemble, (kernel, format) => DotKernelCheck.Bf16AgainstReference(kernel, format));

    /// <summary>bfloat16 of 0..15 in words 0..15 (the vpermw table of the 2/4-bit decoders); lives for the process.</summary>
    private static readonly nint Table = CodeTable();

    /// <summary>Null when the kernels can be assembled and run here, else what is missing.</summary>
    public static string? MissingFeature { get; } =
        DotAssembler.MissingFeature is { } missing && !missing.StartsWith("AVX512", StringComparison.Ordinal)
            ? missing
            : !CpuIsa.Avx512Bf16 ? "AVX512_BF16"
            : null;

    /// <summary>The kernel for <paramref name="format"/> and tiles of <paramref name="rows"/> rows (1 to 4).</summary>
    public static DotKernel Get(DotFormat format, int rows) => Kernels.Get(format, rows, MissingFeature);

    internal static byte[] Assemble(DotFormat format, int rows)
    {
        var a = new Assembler(64);
        AssemblerRegister64[] saved = DotAssembler.EmitPrologue(a);
        switch (format)
        {
            case DotFormat.Int8:
                a.mov(esi, unchecked((int)0x80808080)); // +128 offset off: signed bytes
                a.vpbroadcastd(zmm4, esi);
                a.mov(esi, unchecked((int)0xFFFF0000));
                a.vpbroadcastd(zmm5, esi);
                break;
            default:
                a.mov(esi, format == DotFormat.Int4 ? 0x000F000F : 0x00030003);
                a.vpbroadcastd(zmm4, esi);
                a.mov(rsi, (ulong)Table);
                a.vmovdqu16(zmm5, __zmmword_ptr[rsi]);
                break;
        }

        Label tileLoop = a.CreateLabel(), groupLoop = a.CreateLabel(), unitLoop = a.CreateLabel();
        a.Label(ref tileLoop);
        a.mov(rax, __qword_ptr[rbx + DotArgs.WeightsOffset]);
        a.mov(r9, __qword_ptr[rbx + DotArgs.ScalesOffset]);
        a.mov(r10, __qword_ptr[rbx + DotArgs.ShiftsOffset]);
        a.mov(r12d, __dword_ptr[rbx + DotArgs.GroupsOffset]);
        for (int r = 0; r < rows; r++) a.vpxord(Tile(r), Tile(r), Tile(r));
        a.Label(ref groupLoop);
        for (int r = 0; r < rows; r++)
        {
            a.vpxord(Sum(r, 0), Sum(r, 0), Sum(r, 0));
            a.vpxord(Sum(r, 1), Sum(r, 1), Sum(r, 1));
        }
        a.mov(r14d, __dword_ptr[rbx + DotArgs.UnitsPerBlockOffset]);
        a.Label(ref unitLoop);
        int planes = format.Bf16Pairs().Length / 2;
        if (format == DotFormat.Int2)
        {
            // Eight planes, four registers: the low bytes' planes, then the high bytes'.
            a.vmovdqu16(zmm29, __zmmword_ptr[rax]);
            for (int half = 0; half < 2; half++)
            {
                for (int p = 0; p < 4; p++)
                {
                    int shift = 8 * half + 2 * p;
                    if (shift == 0) a.vpandd(Plane(p), zmm29, zmm4);
                    else
                    {
                        a.vpsrlw(Plane(p), zmm29, (byte)shift);
                        if (shift != 14) a.vpandd(Plane(p), Plane(p), zmm4);
                    }
                    a.vpermw(Plane(p), Plane(p), zmm5);
                }
                for (int p = 0; p < 4; p++) Dot(a, rows, Plane(p), 4 * half + p);
            }
        }
        else
        {
            EmitPlanes(a, format);
            for (int p = 0; p < planes; p++) Dot(a, rows, PlaneOf(format, p), p);
        }
        a.add(rax, DotFormats.UnitBytes);
        a.add(rcx, planes * rows * 4);
        a.dec(r14d);
        a.jnz(unitLoop);

        // Group end: tile += (chain 0 + chain 1) * scale; 2/4-bit: tile -= shift * xSum.
        for (int r = 0; r < rows; r++)
        {
            a.vaddps(Sum(r, 0), Sum(r, 0), Sum(r, 1));
            a.vfmadd231ps(Tile(r), Sum(r, 0), __zmmword_ptr[r9]);
        }
        DotAssembler.EmitGroupEnd(a, format, rows, groupLoop);
        return DotAssembler.EmitTileEndAndFinish(a, rows, tileLoop, saved);
    }

    /// <summary>Row r's sum += plane · the row's pair of plane <paramref name="index"/> of this unit; planes alternate
    /// between two accumulator chains so that consecutive vdpbf16ps do not wait on each other.</summary>
    private static void Dot(Assembler a, int rows, AssemblerRegisterZMM plane, int index)
    {
        for (int r = 0; r < rows; r++)
            a.vdpbf16ps(Sum(r, index % 2), plane, __dword_bcst[rcx + (index * rows + r) * 4]);
    }

    /// <summary>qint8 and qint4: loads the unit at rax and leaves its bf16 code planes in registers.</summary>
    private static void EmitPlanes(Assembler a, DotFormat format)
    {
        if (format == DotFormat.Int8)
        {
            a.vpxord(zmm3, zmm4, __zmmword_ptr[rax]);
            // Plane (input 0, input 2): bytes 0 and 2 of each lane, sign-extended, to float; bf16 = the upper half.
            a.vpslld(zmm28, zmm3, 24);
            a.vpsrad(zmm28, zmm28, 24);
            a.vcvtdq2ps(zmm28, zmm28);
            a.vpsrld(zmm28, zmm28, 16);
            a.vpslld(zmm29, zmm3, 8);
            a.vpsrad(zmm29, zmm29, 24);
            a.vcvtdq2ps(zmm29, zmm29);
            a.vpternlogd(zmm28, zmm29, zmm5, 0xF8); // zmm28 | (zmm29 & 0xFFFF0000)
            // Plane (input 1, input 3).
            a.vpslld(zmm30, zmm3, 16);
            a.vpsrad(zmm30, zmm30, 24);
            a.vcvtdq2ps(zmm30, zmm30);
            a.vpsrld(zmm30, zmm30, 16);
            a.vpsrad(zmm31, zmm3, 24);
            a.vcvtdq2ps(zmm31, zmm31);
            a.vpternlogd(zmm30, zmm31, zmm5, 0xF8);
            return;
        }
        a.vmovdqu16(zmm3, __zmmword_ptr[rax]);
        a.vpandd(zmm0, zmm3, zmm4);            // words & 15: inputs 0, 2
        a.vpsrlw(zmm1, zmm3, 8);
        a.vpandd(zmm1, zmm1, zmm4);            // inputs 1, 3
        a.vpsrlw(zmm2, zmm3, 4);
        a.vpandd(zmm2, zmm2, zmm4);            // inputs 4, 6
        a.vpsrlw(zmm3, zmm3, 12);              // inputs 5, 7
        for (int p = 0; p < 4; p++) a.vpermw(Plane(p), Plane(p), zmm5);
    }

    private static AssemblerRegisterZMM PlaneOf(DotFormat format, int p) =>
        format == DotFormat.Int8 ? (p == 0 ? zmm28 : zmm30) : Plane(p);

    private static nint CodeTable()
    {
        var table = (ushort*)NativeMemory.AlignedAlloc(64, 64);
        for (int i = 0; i < 32; i++) table[i] = i < 16 ? (ushort)Bf16Activations.Round(i) : (ushort)0;
        return (nint)table;
    }

    private static AssemblerRegisterZMM Plane(int p) => p switch { 0 => zmm0, 1 => zmm1, 2 => zmm2, _ => zmm3 };

    private static AssemblerRegisterZMM Tile(int r) => DotAssembler.Tile(r);

    private static AssemblerRegisterZMM Sum(int r, int chain) => DotAssembler.Sum(r, chain);
}
