using Quanto.Kernels.Cpu.Int8;

namespace Quanto.Kernels.Cpu.Jit;

/// <summary>
/// The assembled panel kernels of one family (int8 VNNI, bf16), each (format, tile rows) assembled and published
/// once, on first use (<see cref="AssembledCode{TKey}"/>); in Debug builds it is run against its scalar reference
/// before it is handed out.
/// </summary>
/// <param name="name">The kernels' name ("vnni512-asm").</param>
/// <param name="family">What the refusal message calls them ("int8").</param>
/// <param name="assemble">The machine code of one (format, rows) kernel.</param>
/// <param name="check">The Debug-build check against the scalar reference.</param>
internal sealed unsafe class AssembledKernels(string name, string family, Func<DotFormat, int, byte[]> assemble,
    Action<DotKernel, DotFormat> check)
{
    private readonly string _name = name;

    private readonly AssembledCode<(DotFormat Format, int Rows)> _code = new(
        key => assemble(key.Format, key.Rows),
        (key, code) => check(Wrap(name, key.Rows, code), key.Format));

    /// <summary>The kernel for <paramref name="format"/> and tiles of <paramref name="rows"/> rows (1 to 4).</summary>
    /// <param name="format">The weight format.</param>
    /// <param name="rows">Rows per tile.</param>
    /// <param name="missing">What this CPU or process lacks for these kernels (null: nothing).</param>
    public DotKernel Get(DotFormat format, int rows, string? missing)
    {
        if (missing is not null)
            throw new PlatformNotSupportedException($"The assembled {family} kernels need {missing}.");
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rows, 4);
        return Wrap(_name, rows, _code.Get((format, rows)));
    }

    private static DotKernel Wrap(string name, int rows, nint code) =>
        new(name, rows, (delegate* unmanaged[SuppressGCTransition]<DotArgs*, void>)code);
}
