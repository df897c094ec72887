using Iced.Intel;
using Quanto.Kernels.Cpu.Int8;
using static Iced.Intel.AssemblerRegisters;

namespace Quanto.Kernels.Cpu.Jit;

/// <summary>
/// The bf16 GEMM micro-kernels as AVX-512 BF16 machine code, assembled at run time with Iced (.NET 10 has no
/// intrinsic for vdpbf16ps): R rows (1 to <see cref="MaxRows"/>) by P panels (1 to <see cref="MaxPanels"/>) of
/// float32 sums in registers, on weights decoded once per block into bf16 pairs (<see cref="Bf16Panels"/>), so that
/// each weight load serves R rows and each broadcast activation pair P panels. Per input pair: P weight loads, R
/// broadcasts, R * P vdpbf16ps (two products per column each); per group the sums go to the accumulators in memory
/// (acc += sum * scale - shift * xSum). Arguments: <see cref="Bf16GemmArgs"/>.
/// </summary>
/// <remarks>
/// It uses all 32 vector registers: xmm6-15, callee-saved on Windows x64, are saved and restored on every OS (so the
/// code that runs here is the code that runs there), and so are the general-purpose registers used. In Debug builds
/// every kernel is run against <see cref="Bf16GemmReference"/> before it is handed out.
/// </remarks>
internal static unsafe class Bf16GemmAssembler
{
    /// <summary>Rows per tile at most (R * P accumulators, P weights and two broadcasts fit 32 registers).</summary>
    public const int MaxRows = 6;

    /// <summary>Panels per block at most.</summary>
    public const int MaxPanels = 4;

    private static readonly AssembledCode<(int Rows, int Panels, bool Shifted)> Code = new(
        key => Assemble(key.Rows, key.Panels, key.Shifted),
        (key, code) => Bf16GemmReference.Check(
            (delegate* unmanaged[SuppressGCTransition]<Bf16GemmArgs*, void>)code, key.Rows, key.Panels, key.Shifted));

    /// <summary>Null when the kernels can be assembled and run here, else what is missing.</summary>
    public static string? MissingFeature => Bf16Assembler.MissingFeature;

    /// <summary>The kernel for tiles of <paramref name="rows"/> rows, blocks of <paramref name="panels"/> panels, with
    /// (2/4-bit weights) or without (qint8) the shift term.</summary>
    /// <exception cref="PlatformNotSupportedException">This CPU has no AVX512_BF16 (or assembly is off).</exception>
    public static delegate* unmanaged[SuppressGCTransition]<Bf16GemmArgs*, void> Get(int rows, int panels, bool shifted)
    {
        if (MissingFeature is { } missing)
            throw new PlatformNotSupportedException($"The assembled bf16 GEMM kernels need {missing}.");
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rows, MaxRows);
        ArgumentOutOfRangeException.ThrowIfLessThan(panels, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(panels, MaxPanels);
        return (delegate* unmanaged[SuppressGCTransition]<Bf16GemmArgs*, void>)Code.Get((rows, panels, shifted));
    }

    internal static byte[] Assemble(int rows, int panels, bool shifted)
    {
        var a = new Assembler(64);
        AssemblerRegister64[] saved = [rbx, rbp, rsi, rdi, r12, r13, r14, r15];
        foreach (AssemblerRegister64 register in saved) a.push(register);
        a.mov(rbx, OperatingSystem.IsWindows() ? rcx : rdi);
        a.sub(rsp, 160);
        for (int i = 0; i < 10; i++) a.vmovdqu(__xmmword_ptr[rsp + 16 * i], Xmm(6 + i));

        // r15 = the tile's activation row 0, r10 = row stride, rbp = the tile's xSums, rdi = its accumulators.
        a.mov(r15, __qword_ptr[rbx + Bf16GemmArgs.XOffset]);
        a.mov(r10, __qword_ptr[rbx + Bf16GemmArgs.XStrideOffset]);
        a.mov(rbp, __qword_ptr[rbx + Bf16GemmArgs.XSumsOffset]);
        a.mov(rdi, __qword_ptr[rbx + Bf16GemmArgs.AccOffset]);
        a.mov(r14d, __dword_ptr[rbx + Bf16GemmArgs.TilesOffset]);
        Label tileLoop = a.CreateLabel(), groupLoop = a.CreateLabel(), pairLoop = a.CreateLabel();
        a.Label(ref tileLoop);
        a.mov(rax, __qword_ptr[rbx + Bf16GemmArgs.WeightsOffset]);
        a.mov(rsi, __qword_ptr[rbx + Bf16GemmArgs.ScalesOffset]);
        if (shifted) a.mov(rdx, __qword_ptr[rbx + Bf16GemmArgs.ShiftsOffset]);
        a.mov(r8, r15);                      // rows 0-2: r8 + {0, 1, 2} * stride
        a.lea(r9, __[r15 + r10 * 2]);
        a.add(r9, r10);                      // rows 3-5: r9 + {0, 1, 2} * stride
        a.mov(r11, rbp);
        a.mov(r12d, __dword_ptr[rbx + Bf16GemmArgs.GroupsOffset]);

        a.Label(ref groupLoop);
        for (int r = 0; r < rows; r++)
        {
            for (int p = 0; p < panels; p++) a.vpxord(Acc(r, p, panels), Acc(r, p, panels), Acc(r, p, panels));
        }
        a.mov(r13d, __dword_ptr[rbx + Bf16GemmArgs.PairsPerGroupOffset]);
        a.shr(r13d, 1);
        a.Label(ref pairLoop);
        for (int half = 0; half < 2; half++)
        {
            for (int p = 0; p < panels; p++) a.vmovups(Weight(p), __zmmword_ptr[rax + (half * panels + p) * 64]);
            for (int r = 0; r < rows; r++)
            {
                AssemblerRegisterZMM pair = r % 2 == 0 ? zmm28 : zmm29;
                a.vpbroadcastd(pair, Row(r, half * 4));
                for (int p = 0; p < panels; p++) a.vdpbf16ps(Acc(r, p, panels), Weight(p), pair);
            }
        }
        a.add(rax, 2 * panels * 64);
        a.add(r8, 8);
        a.add(r9, 8);
        a.dec(r13d);
        a.jnz(pairLoop);

        // Group end: acc += sum * scale (- shift * xSum), the shifts in the weight registers.
        if (shifted)
        {
            for (int p = 0; p < panels; p++) a.vmovups(Weight(p), __zmmword_ptr[rdx + p * 64]);
        }
        for (int r = 0; r < rows; r++)
        {
            for (int p = 0; p < panels; p++)
            {
                AssemblerRegisterZMM total = (r * panels + p) % 2 == 0 ? zmm30 : zmm31;
                int at = (r * Bf16GemmArgs.AccRowFloats + p * 16) * 4;
                a.vmovups(total, __zmmword_ptr[rdi + at]);
                a.vfmadd231ps(total, Acc(r, p, panels), __zmmword_ptr[rsi + p * 64]);
                if (shifted) a.vfnmadd231ps(total, Weight(p), __dword_bcst[r11 + r * 4]);
                a.vmovups(__zmmword_ptr[rdi + at], total);
            }
        }
        a.add(rsi, panels * 64);
        if (shifted)
        {
            a.add(rdx, panels * 64);
            a.add(r11, __qword_ptr[rbx + Bf16GemmArgs.XSumsGroupStrideOffset]);
        }
        a.dec(r12d);
        a.jnz(groupLoop);

        // Next tile: rows further on in the activations, xSums and accumulators.
        a.imul(rcx, r10, rows);
        a.add(r15, rcx);
        a.add(rbp, rows * 4);
        a.add(rdi, rows * Bf16GemmArgs.AccRowFloats * 4);
        a.dec(r14d);
        a.jnz(tileLoop);

        for (int i = 0; i < 10; i++) a.vmovdqu(Xmm(6 + i), __xmmword_ptr[rsp + 16 * i]);
        a.add(rsp, 160);
        return DotAssembler.EmitEpilogueAndFinish(a, saved);
    }

    /// <summary>Row r's broadcast pair, <paramref name="offset"/> bytes on.</summary>
    private static AssemblerMemoryOperand Row(int r, int offset) => r switch
    {
        0 => __dword_ptr[r8 + offset],
        1 => __dword_ptr[r8 + r10 + offset],
        2 => __dword_ptr[r8 + r10 * 2 + offset],
        3 => __dword_ptr[r9 + offset],
        4 => __dword_ptr[r9 + r10 + offset],
        _ => __dword_ptr[r9 + r10 * 2 + offset],
    };

    private static readonly AssemblerRegisterZMM[] Zmm =
    [
        zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14, zmm15,
        zmm16, zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, zmm24, zmm25, zmm26, zmm27,
    ];

    private static readonly AssemblerRegisterXMM[] Xmms =
        [xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14, xmm15];

    private static AssemblerRegisterXMM Xmm(int i) => Xmms[i - 6];

    /// <summary>Row r, panel p's sums: zmm0 .. zmm23.</summary>
    private static AssemblerRegisterZMM Acc(int r, int p, int panels) => Zmm[r * panels + p];

    /// <summary>Panel p's decoded pair (and at group end its shifts): zmm24 .. zmm27.</summary>
    private static AssemblerRegisterZMM Weight(int p) => Zmm[24 + p];
}
