using ILGPU;
using ILGPU.Runtime;
using Quanto.Kernels.Ilgpu.Kernels;
using Quanto.Kernels.Ilgpu.Layout;
using BytesKernel = System.Action<ILGPU.KernelConfig, ILGPU.ArrayView<float>,
    ILGPU.ArrayView<Quanto.Kernels.Ilgpu.Kernels.Chunk16>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>,
    Quanto.Kernels.Ilgpu.Kernels.LinearShape>;
using PackedKernel = System.Action<ILGPU.KernelConfig, ILGPU.ArrayView<float>,
    ILGPU.ArrayView<Quanto.Kernels.Ilgpu.Kernels.Chunk16>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>,
    ILGPU.ArrayView<float>, Quanto.Kernels.Ilgpu.Kernels.LinearShape>;
using W8A8Launcher = System.Action<ILGPU.KernelConfig, ILGPU.ArrayView<int>,
    ILGPU.ArrayView<Quanto.Kernels.Ilgpu.Kernels.Chunk16>, ILGPU.ArrayView<float>, float, ILGPU.ArrayView<float>,
    Quanto.Kernels.Ilgpu.Kernels.LinearShape>;

namespace Quanto.Kernels.Ilgpu;

/// <summary>
/// Typed launchers for every kernel on one accelerator, each compiled once on first use (ILGPU compiles at load time;
/// CUDA compiles take ~0.1 s each, so nothing is compiled that a model never runs).
/// </summary>
internal sealed class KernelLaunchers
{
    private readonly Accelerator _accelerator;
    private readonly Dictionary<(WeightFormat, bool), BytesKernel> _bytes = [];
    private readonly Dictionary<(WeightFormat, bool), PackedKernel> _packed = [];
    private readonly Dictionary<bool, W8A8Launcher> _w8a8 = [];

    public KernelLaunchers(Accelerator accelerator) => _accelerator = accelerator;

    public BytesKernel Bytes(WeightFormat format, bool gemm)
    {
        if (!_bytes.TryGetValue((format, gemm), out var launcher))
        {
            launcher = (format, gemm) switch
            {
                (WeightFormat.Int8, false) => Load(ByteWeightKernel.Run<Int8Decoder, GemvTile>),
                (WeightFormat.Int8, true) => Load(ByteWeightKernel.Run<Int8Decoder, GemmTile>),
                (WeightFormat.Float8E4M3Fn, false) => Load(ByteWeightKernel.Run<Float8E4M3FnDecoder, GemvTile>),
                (WeightFormat.Float8E4M3Fn, true) => Load(ByteWeightKernel.Run<Float8E4M3FnDecoder, GemmTile>),
                (WeightFormat.Float8E5M2, false) => Load(ByteWeightKernel.Run<Float8E5M2Decoder, GemvTile>),
                (WeightFormat.Float8E5M2, true) => Load(ByteWeightKernel.Run<Float8E5M2Decoder, GemmTile>),
                _ => throw new ArgumentOutOfRangeException(nameof(format), format, "Not a per-channel 8-bit format."),
            };
            _bytes[(format, gemm)] = launcher;
        }
        return launcher;
    }

    public PackedKernel Packed(WeightFormat format, bool gemm)
    {
        if (!_packed.TryGetValue((format, gemm), out var launcher))
        {
            launcher = (format, gemm) switch
            {
                (WeightFormat.Int4, false) => Load(PackedWeightKernel.Run<Int4Bits, GemvTile>),
                (WeightFormat.Int4, true) => Load(PackedWeightKernel.Run<Int4Bits, GemmTile>),
                (WeightFormat.Int2, false) => Load(PackedWeightKernel.Run<Int2Bits, GemvTile>),
                (WeightFormat.Int2, true) => Load(PackedWeightKernel.Run<Int2Bits, GemmTile>),
                _ => throw new ArgumentOutOfRangeException(nameof(format), format, "Not a packed format."),
            };
            _packed[(format, gemm)] = launcher;
        }
        return launcher;
    }

    public W8A8Launcher W8A8(bool gemm)
    {
        if (!_w8a8.TryGetValue(gemm, out var launcher))
        {
            launcher = gemm ? Load(W8A8Kernel.Run<GemmTile>) : Load(W8A8Kernel.Run<GemvTile>);
            _w8a8[gemm] = launcher;
        }
        return launcher;
    }

    /// <summary>Grid for y (M, N): groups of <see cref="Tiling.RowsPerGroup"/> features x groups of x rows.</summary>
    public static KernelConfig Config(int m, int n, bool gemm)
    {
        int rows = gemm ? Tiling.GemmRows : 1;
        return new KernelConfig(new Index2D(Tiling.GroupsFor(n), (m + rows - 1) / rows),
            new Index2D(Tiling.GroupThreads, 1));
    }

    private BytesKernel Load(Action<ArrayView<float>, ArrayView<Chunk16>, ArrayView<float>, ArrayView<float>,
        LinearShape> kernel) => _accelerator.LoadStreamKernel(kernel);

    private PackedKernel Load(Action<ArrayView<float>, ArrayView<Chunk16>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, LinearShape> kernel) => _accelerator.LoadStreamKernel(kernel);

    private W8A8Launcher Load(Action<ArrayView<int>, ArrayView<Chunk16>, ArrayView<float>, float, ArrayView<float>,
        LinearShape> kernel) => _accelerator.LoadStreamKernel(kernel);
}
