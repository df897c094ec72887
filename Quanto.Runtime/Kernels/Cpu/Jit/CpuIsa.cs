using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Jit;

/// <summary>
/// CPU features .NET has no intrinsics class for, read from CPUID once. A feature counts only when the OS also saves
/// the 512-bit register state, which <see cref="Avx512F.IsSupported"/> already checks.
/// </summary>
internal static class CpuIsa
{
    /// <summary>AVX-512 VNNI: vpdpbusd on 512-bit registers (CPUID leaf 7 subleaf 0, ECX bit 11).</summary>
    public static bool Avx512Vnni { get; } = Avx512(leafEcx: true, bit: 11);

    /// <summary>AVX-512 BF16: vdpbf16ps, vcvtne2ps2bf16 (CPUID leaf 7 subleaf 1, EAX bit 5).</summary>
    public static bool Avx512Bf16 { get; } = Avx512(leafEcx: false, bit: 5);

    /// <summary>The CPU's brand string ("AMD EPYC 9R45 ..."), or the OS's architecture name where CPUID has none.</summary>
    public static string Brand { get; } = ReadBrand();

    private static bool Avx512(bool leafEcx, int bit)
    {
        if (!Avx512F.IsSupported || !Avx512BW.IsSupported || !X86Base.IsSupported) return false;
        if (X86Base.CpuId(0, 0).Eax < 7) return false;
        (int eax, _, int ecx, _) = X86Base.CpuId(7, leafEcx ? 0 : 1);
        return (((leafEcx ? ecx : eax) >> bit) & 1) != 0;
    }

    private static string ReadBrand()
    {
        if (!X86Base.IsSupported || (uint)X86Base.CpuId(unchecked((int)0x80000000), 0).Eax < 0x80000004)
            return System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString();
        var text = new System.Text.StringBuilder();
        for (int leaf = 0; leaf < 3; leaf++)
        {
            (int a, int b, int c, int d) = X86Base.CpuId(unchecked((int)0x80000002) + leaf, 0);
            foreach (int register in new[] { a, b, c, d })
            {
                for (int i = 0; i < 4; i++) text.Append((char)((register >> (8 * i)) & 0xFF));
            }
        }
        return text.ToString().TrimEnd('\0', ' ').Trim();
    }
}
