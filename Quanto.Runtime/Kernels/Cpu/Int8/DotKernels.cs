namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// The int8-activation kernel for a (path, format, tile height), in one place, and which paths this CPU runs. A tile
/// is one row (few-row calls, every row streaming the weights) or four rows (many-row calls: one weight decode
/// serves four rows).
/// </summary>
internal static unsafe class DotKernels
{
    /// <summary>Rows per tile of the many-row kernels.</summary>
    public const int GemmTileRows = 4;

    /// <summary>Row counts from this up use the four-row tiles.</summary>
    public const int GemmMinRows = 4;

    /// <summary>The paths this CPU runs, fastest first (Auto excluded).</summary>
    public static IReadOnlyList<DotPath> Supported { get; } =
        Enum.GetValues<DotPath>().Where(p => p != DotPath.Auto && MissingFeature(p) is null).ToArray();

    /// <summary>Null when this CPU (and OS) can run <paramref name="path"/>, else the missing feature.</summary>
    public static string? MissingFeature(DotPath path) => path switch
    {
        DotPath.Vnni512Assembled => Jit.DotAssembler.MissingFeature,
        DotPath.AvxVnni256 => System.Runtime.Intrinsics.X86.AvxVnni.IsSupported ? null : "AVX-VNNI",
        DotPath.Avx2Madd256 => System.Runtime.Intrinsics.X86.Avx2.IsSupported ? null : "AVX2",
        _ => null,
    };

    /// <summary>The path Auto resolves to.</summary>
    public static DotPath Best => Supported[0];

    /// <summary>The kernel of <paramref name="path"/> (not Auto) for <paramref name="format"/> and tiles of
    /// <paramref name="tileRows"/> rows. <paramref name="symmetric"/>: every activation code lies in [-127, 127]
    /// (the dynamic modes; static W8A8 codes may hold -128), which lets the AVX2 qint8 kernel use signed codes.</summary>
    /// <exception cref="PlatformNotSupportedException">This CPU cannot run the path.</exception>
    public static DotKernel Get(DotPath path, DotFormat format, int tileRows, bool symmetric = false)
    {
        if (MissingFeature(path) is { } missing)
            throw new PlatformNotSupportedException($"The {path} int8 kernels need {missing}, which this CPU lacks.");
        return path switch
        {
            DotPath.Vnni512Assembled => Jit.DotAssembler.Get(format, tileRows),
            DotPath.AvxVnni256 => AvxVnniDot.Get(format, tileRows),
            DotPath.Avx2Madd256 => Avx2Dot.Get(format, tileRows, symmetric),
            DotPath.Portable256 => PortableDot.Get(format, tileRows),
            _ => Scalar(format, tileRows),
        };
    }

    /// <summary>The bf16 kernel (DynamicActivations.BFloat16) for <paramref name="format"/> and tiles of
    /// <paramref name="tileRows"/> rows, or null when this CPU has no vdpbf16ps (or run-time assembly is off): the
    /// caller then runs the float kernels on the rounded activations.</summary>
    public static DotKernel? Bf16(DotFormat format, int tileRows) =>
        Jit.Bf16Assembler.MissingFeature is null ? Jit.Bf16Assembler.Get(format, tileRows) : null;

    /// <summary>The scalar bf16 kernel (tests compare the assembled one with it on real layouts).</summary>
    internal static DotKernel ScalarBf16(DotFormat format, int tileRows) => new("bf16-scalar", tileRows, format switch
    {
        DotFormat.Int8 => &ScalarBf16Int8,
        DotFormat.Int4 => &ScalarBf16Int4,
        _ => &ScalarBf16Int2,
    });

    private static void ScalarBf16Int8(DotArgs* a) => Bf16Reference.Run(DotFormat.Int8, a);

    private static void ScalarBf16Int4(DotArgs* a) => Bf16Reference.Run(DotFormat.Int4, a);

    private static void ScalarBf16Int2(DotArgs* a) => Bf16Reference.Run(DotFormat.Int2, a);

    private static DotKernel Scalar(DotFormat format, int tileRows) => new("scalar", tileRows, format switch
    {
        DotFormat.Int8 => &ScalarInt8,
        DotFormat.Int4 => &ScalarInt4,
        _ => &ScalarInt2,
    });

    private static void ScalarInt8(DotArgs* a) => DotReference.Run(DotFormat.Int8, a);

    private static void ScalarInt4(DotArgs* a) => DotReference.Run(DotFormat.Int4, a);

    private static void ScalarInt2(DotArgs* a) => DotReference.Run(DotFormat.Int2, a);
}
