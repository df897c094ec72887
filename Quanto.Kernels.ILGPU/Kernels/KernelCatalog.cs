using System.Reflection;
using Quanto.Kernels.Ilgpu.Layout;

namespace Quanto.Kernels.Ilgpu.Kernels;

/// <summary>One compiled kernel: a format (or W8A8) in its GEMV or GEMM shape.</summary>
/// <param name="Name">Stable name ("int4_gemv"), used for PTX snapshots and reports.</param>
/// <param name="Format">The weight format; null for W8A8 (whose weights are qint8).</param>
/// <param name="IsGemm">True for the GEMM shape (<see cref="GemmTile"/>).</param>
/// <param name="Method">The closed generic kernel method.</param>
public sealed record KernelEntry(string Name, WeightFormat? Format, bool IsGemm, MethodInfo Method)
{
    /// <summary>True for the W8A8 kernels, which use dp4a on CUDA.</summary>
    public bool IsW8A8 => Format is null;
}

/// <summary>Every kernel of this package, in one list (PTX checks, benchmarks and the backend all start here).</summary>
public static class KernelCatalog
{
    /// <summary>All kernels: five weight-only formats and W8A8, each as GEMV and GEMM.</summary>
    public static IReadOnlyList<KernelEntry> All { get; } = Build();

    /// <summary>The weight-only kernel for a format and shape.</summary>
    public static KernelEntry WeightOnly(WeightFormat format, bool gemm) =>
        All.Single(e => e.Format == format && e.IsGemm == gemm);

    /// <summary>The W8A8 kernel for a shape.</summary>
    public static KernelEntry W8A8(bool gemm) => All.Single(e => e.IsW8A8 && e.IsGemm == gemm);

    private static List<KernelEntry> Build()
    {
        MethodInfo bytes = typeof(ByteWeightKernel).GetMethod(nameof(ByteWeightKernel.Run))!;
        MethodInfo packed = typeof(PackedWeightKernel).GetMethod(nameof(PackedWeightKernel.Run))!;
        MethodInfo w8a8 = typeof(W8A8Kernel).GetMethod(nameof(W8A8Kernel.Run))!;
        var list = new List<KernelEntry>();
        foreach ((bool gemm, Type tile) in new[] { (false, typeof(GemvTile)), (true, typeof(GemmTile)) })
        {
            string suffix = gemm ? "gemm" : "gemv";
            list.Add(new($"int8_{suffix}", WeightFormat.Int8, gemm, bytes.MakeGenericMethod(typeof(Int8Decoder), tile)));
            list.Add(new($"fp8_e4m3fn_{suffix}", WeightFormat.Float8E4M3Fn, gemm,
                bytes.MakeGenericMethod(typeof(Float8E4M3FnDecoder), tile)));
            list.Add(new($"fp8_e5m2_{suffix}", WeightFormat.Float8E5M2, gemm,
                bytes.MakeGenericMethod(typeof(Float8E5M2Decoder), tile)));
            list.Add(new($"int4_{suffix}", WeightFormat.Int4, gemm, packed.MakeGenericMethod(typeof(Int4Bits), tile)));
            list.Add(new($"int2_{suffix}", WeightFormat.Int2, gemm, packed.MakeGenericMethod(typeof(Int2Bits), tile)));
            list.Add(new($"w8a8_{suffix}", null, gemm, w8a8.MakeGenericMethod(tile)));
        }
        return list;
    }
}
