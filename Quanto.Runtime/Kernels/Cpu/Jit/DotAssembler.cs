using Iced.Intel;
using Quanto.Kernels.Cpu.Int8;
using static Iced.Intel.AssemblerRegisters;

namespace Quanto.Kernels.Cpu.Jit;

/// <summary>
/// The int8-activation kernels as AVX-512 VNNI machine code, assembled at run time with Iced: .NET 10 has no
/// intrinsic for 512-bit vpdpbusd (AvxVnni is 256-bit, Avx10v1 needs AVX10). The algorithm and float steps are
/// <see cref="DotReference"/>'s, one 512-bit register per row for the panel's 16 columns: per unit one load (and
/// for 2/4-bit weights a mask and shifts to split the code planes), then one vpdpbusd per plane and row with the
/// row's four activation codes broadcast from memory. Each (format, tile rows) is assembled once, on first use; in
/// Debug builds it is then run against <see cref="DotReference"/> on random data before it is handed out.
/// </summary>
/// <remarks>
/// Registers are chosen to be volatile in both the System V and the Windows x64 conventions (zmm0-5, zmm16-31);
/// the general-purpose registers used are saved and restored, so the same code serves both.
/// </remarks>
internal static unsafe class DotAssembler
{
    /// <summary>Environment variable that turns run-time assembly off ("0").</summary>
    public const string Variable = "QUANTO_JIT";

    private static readonly AssembledKernels Kernels =
        new("vnni512-asm", "int8", Assemble, (kernel, format) => DotKernelCheck.AgainstReference(kernel, format));

    /// <summary>Null when the kernels can be assembled and run here, else what is missing.</summary>
    public static string? MissingFeature { get; } =
        Environment.GetEnvironmentVariable(Variable) == "0" ? $"run-time assembly (turned off by {Variable}=0)"
        : !ExecutableMemory.IsSupported ? "run-time assembly (x64 Linux or Windows)"
        : !CpuIsa.Avx512Vnni ? "AVX512_VNNI"
        : null;

    /// <summary>The kernel for <paramref name="format"/> and tiles of <paramref name="rows"/> rows (1 to 4).</summary>
    public static DotKernel Get(DotFormat format, int rows) => Kernels.Get(format, rows, MissingFeature);

    /// <summary>The machine code of one kernel, position independent (relative jumps only, no data).</summary>
    internal static byte[] Assemble(DotFormat format, int rows)
    {
        var a = new Assembler(64);
        AssemblerRegister64[] saved = EmitPrologue(a);
        a.mov(rdx, __qword_ptr[rbx + DotArgs.XScalesOffset]);
        a.mov(r8, __qword_ptr[rbx + DotArgs.XCorrectionsOffset]);
        if (format != DotFormat.Int8)
        {
            a.mov(esi, format == DotFormat.Int4 ? 0x0F0F0F0F : 0x03030303);
            a.vpbroadcastd(zmm4, esi);
        }

        // The activation pointers run on from one tile to the next; the panel's pointers restart per tile.
        Label tileLoop = a.CreateLabel(), groupLoop = a.CreateLabel(), blockLoop = a.CreateLabel();
        Label unitLoop = a.CreateLabel();
        a.Label(ref tileLoop);
        a.mov(rax, __qword_ptr[rbx + DotArgs.WeightsOffset]);
        a.mov(r9, __qword_ptr[rbx + DotArgs.ScalesOffset]);
        a.mov(r10, __qword_ptr[rbx + DotArgs.ShiftsOffset]);
        a.mov(r12d, __dword_ptr[rbx + DotArgs.GroupsOffset]);
        for (int r = 0; r < rows; r++) a.vpxord(Tile(r), Tile(r), Tile(r));

        a.Label(ref groupLoop);
        a.vmovups(zmm5, __zmmword_ptr[r9]);
        a.mov(r13d, __dword_ptr[rbx + DotArgs.BlocksPerGroupOffset]);
        a.Label(ref blockLoop);
        for (int r = 0; r < rows; r++)
        {
            a.vpxord(Sum(r, 0), Sum(r, 0), Sum(r, 0));
            a.vpxord(Sum(r, 1), Sum(r, 1), Sum(r, 1));
        }
        a.mov(r14d, __dword_ptr[rbx + DotArgs.UnitsPerBlockOffset]);
        int planes = format.UnitK() / 4;
        // Two accumulator chains per row (planes alternate; qint8's single plane alternates units, two per pass:
        // a block is a multiple of 8 units), so consecutive vpdpbusd do not wait on each other's result.
        int unitsPerPass = planes == 1 ? 2 : 1;
        if (unitsPerPass == 2) a.shr(r14d, 1);
        a.Label(ref unitLoop);
        for (int u = 0; u < unitsPerPass; u++)
        {
            EmitPlanes(a, format, u * DotFormats.UnitBytes);
            for (int p = 0; p < planes; p++)
            {
                int quad = u * planes + p;
                for (int r = 0; r < rows; r++)
                    a.vpdpbusd(Sum(r, quad % 2), Plane(p), __dword_bcst[rcx + (quad * rows + r) * 4]);
            }
        }
        a.add(rax, unitsPerPass * DotFormats.UnitBytes);
        a.add(rcx, unitsPerPass * planes * rows * 4);
        a.dec(r14d);
        a.jnz(unitLoop);

        // Block end: tile += float(sum - correction) * (scale * xScale).
        for (int r = 0; r < rows; r++)
        {
            a.vpaddd(Sum(r, 0), Sum(r, 0), Sum(r, 1));
            if (format.IsSigned()) a.vpsubd(Sum(r, 0), Sum(r, 0), __dword_bcst[r8 + r * 4]);
            a.vcvtdq2ps(zmm28, Sum(r, 0));
            a.vmulps(zmm29, zmm5, __dword_bcst[rdx + r * 4]);
            a.vfmadd231ps(Tile(r), zmm28, zmm29);
        }
        a.add(rdx, rows * 4);
        if (format.IsSigned()) a.add(r8, rows * 4);
        a.dec(r13d);
        a.jnz(blockLoop);

        EmitGroupEnd(a, format, rows, groupLoop);
        return EmitTileEndAndFinish(a, rows, tileLoop, saved);
    }

    /// <summary>Shared by the int8 and bf16 kernels. Saves the general-purpose registers used (non-volatile in one
    /// ABI or the other), then rbx = the DotArgs pointer (first argument of either ABI), rcx = x, r11 = xSums,
    /// rdi = output, rbp = bytes between output rows, r15d = tiles. The saved registers go to
    /// <see cref="EmitTileEndAndFinish"/>, which restores them.</summary>
    internal static AssemblerRegister64[] EmitPrologue(Assembler a)
    {
        AssemblerRegister64[] saved = [rbx, rbp, rsi, rdi, r12, r13, r14, r15];
        foreach (AssemblerRegister64 register in saved) a.push(register);
        a.mov(rbx, OperatingSystem.IsWindows() ? rcx : rdi);
        a.mov(rcx, __qword_ptr[rbx + DotArgs.XOffset]);
        a.mov(r11, __qword_ptr[rbx + DotArgs.XSumsOffset]);
        a.mov(rdi, __qword_ptr[rbx + DotArgs.OutputOffset]);
        a.mov(rbp, __qword_ptr[rbx + DotArgs.OutputStrideOffset]);
        a.shl(rbp, 2);
        a.mov(r15d, __dword_ptr[rbx + DotArgs.TilesOffset]);
        return saved;
    }

    /// <summary>Shared by the int8 and bf16 kernels. Group end (2/4-bit: tile -= shift * xSum), next group.</summary>
    internal static void EmitGroupEnd(Assembler a, DotFormat format, int rows, Label groupLoop)
    {
        if (!format.IsSigned())
        {
            a.vmovups(zmm1, __zmmword_ptr[r10]);
            for (int r = 0; r < rows; r++) a.vfnmadd231ps(Tile(r), zmm1, __dword_bcst[r11 + r * 4]);
            a.add(r10, DotFormats.PanelColumns * 4);
            a.add(r11, rows * 4);
        }
        a.add(r9, DotFormats.PanelColumns * 4);
        a.dec(r12d);
        a.jnz(groupLoop);
    }

    /// <summary>Shared by the int8 and bf16 kernels. Tile end (+ bias, row r to rdi + r * stride), next tile, then
    /// the epilogue (restores <paramref name="saved"/>), and the machine code.</summary>
    internal static byte[] EmitTileEndAndFinish(Assembler a, int rows, Label tileLoop, AssemblerRegister64[] saved)
    {
        Label noBias = a.CreateLabel();
        a.mov(rsi, __qword_ptr[rbx + DotArgs.BiasOffset]);
        a.test(rsi, rsi);
        a.jz(noBias);
        for (int r = 0; r < rows; r++) a.vaddps(Tile(r), Tile(r), __zmmword_ptr[rsi]);
        a.Label(ref noBias);
        a.mov(rsi, rdi);
        for (int r = 0; r < rows; r++)
        {
            a.vmovups(__zmmword_ptr[rsi], Tile(r));
            a.add(rsi, rbp);
        }
        a.mov(rdi, rsi);
        a.dec(r15d);
        a.jnz(tileLoop);
        return EmitEpilogueAndFinish(a, saved);
    }

    /// <summary>Shared by every assembled kernel: vzeroupper, restores <paramref name="saved"/> (pushed in order),
    /// returns, and gives the machine code.</summary>
    internal static byte[] EmitEpilogueAndFinish(Assembler a, AssemblerRegister64[] saved)
    {
        a.vzeroupper();
        for (int i = saved.Length - 1; i >= 0; i--) a.pop(saved[i]);
        a.ret();

        using var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), 0);
        return stream.ToArray();
    }

    /// <summary>Loads the unit at rax + <paramref name="offset"/> and leaves its code planes in zmm0..zmm(planes-1).</summary>
    private static void EmitPlanes(Assembler a, DotFormat format, int offset)
    {
        switch (format)
        {
            case DotFormat.Int8:
                a.vmovdqu8(zmm0, __zmmword_ptr[rax + offset]);
                break;
            case DotFormat.Int4:
                a.vmovdqu8(zmm1, __zmmword_ptr[rax + offset]);
                a.vpandd(zmm0, zmm1, zmm4);
                a.vpsrlw(zmm1, zmm1, 4);
                a.vpandd(zmm1, zmm1, zmm4);
                break;
            default:
                a.vmovdqu8(zmm3, __zmmword_ptr[rax + offset]);
                a.vpandd(zmm0, zmm3, zmm4);
                a.vpsrlw(zmm1, zmm3, 2);
                a.vpandd(zmm1, zmm1, zmm4);
                a.vpsrlw(zmm2, zmm3, 4);
                a.vpandd(zmm2, zmm2, zmm4);
                a.vpsrlw(zmm3, zmm3, 6);
                a.vpandd(zmm3, zmm3, zmm4);
                break;
        }
    }

    private static AssemblerRegisterZMM Plane(int p) => p switch { 0 => zmm0, 1 => zmm1, 2 => zmm2, _ => zmm3 };

    internal static AssemblerRegisterZMM Tile(int r) => r switch { 0 => zmm16, 1 => zmm17, 2 => zmm18, _ => zmm19 };

    /// <summary>Row r's accumulator of chain 0 (zmm20-23) or 1 (zmm24-27).</summary>
    internal static AssemblerRegisterZMM Sum(int r, int chain) => (chain, r) switch
    {
        (0, 0) => zmm20, (0, 1) => zmm21, (0, 2) => zmm22, (0, _) => zmm23,
        (_, 0) => zmm24, (_, 1) => zmm25, (_, 2) => zmm26, _ => zmm27,
    };
}
