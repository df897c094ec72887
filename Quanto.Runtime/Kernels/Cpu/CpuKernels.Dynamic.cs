using Quanto.Kernels.Cpu.Int8;
using static TorchSharp.torch;

namespace Quanto.Kernels.Cpu;

public sealed partial class CpuKernels
{
    /// <summary>The int8-activation kernel implementation (tests force each one; Auto takes the fastest here).</summary>
    internal DotPath DotPath { get; init; } = DotPath.Auto;

    /// <summary>The implementation this instance's int8-activation calls use.</summary>
    internal DotPath ResolvedDotPath => DotPath == DotPath.Auto ? DotKernels.Best : DotPath;

    /// <inheritdoc />
    /// <remarks>qint8 weights run int8 x int8 with one scale per row of x; qint4 and qint2 weights run their codes
    /// (0..15, 0..3) against per-block int8 activations; every dot product is exact in int32, on AVX-512 VNNI code
    /// assembled at run time where the CPU has it (see Cpu/Jit), else AVX-VNNI, else AVX2 (vpmaddubsw), else
    /// portable SIMD. Float8 weights and <see cref="DynamicActivations.None"/> run <see cref="Linear"/>.</remarks>
    public unsafe Tensor LinearDynamic(Tensor input, PreparedWeight weight, Tensor? bias, DynamicActivations mode)
    {
        var w = KernelChecks.Expect<CpuPreparedWeight>(weight, this);
        KernelChecks.CheckDynamic(mode);
        if (mode == DynamicActivations.BFloat16) return LinearBFloat16(w, input, bias);
        if (ActivationBlocking.For(w.Source, mode) is not { } blocking) return Linear(input, weight, bias);
        KernelChecks.CheckLinear(input, w, bias);
        CheckCpu(input, "input");
        if (bias is not null) CheckCpu(bias, "bias");
        if (input.dtype is not (ScalarType.Float32 or ScalarType.BFloat16))
            throw new ArgumentException($"The CPU kernels take Float32 or BFloat16 inputs; got {input.dtype}.", nameof(input));
        if (w.Format == CpuWeightFormat.Int8 && w.K >= MaxInt8K)
            throw new ArgumentException($"W8A8 needs fewer than {MaxInt8K} input features for exact int32 sums; got {w.K}.");
        using var scope = NewDisposeScope();
        Tensor x = input.dtype == ScalarType.Float32 ? input : input.to(ScalarType.Float32);
        if (!x.is_contiguous()) x = x.contiguous();
        int rows = checked((int)(x.NumberOfElements / w.K));
        Tensor y = empty(TensorSizes.WithLast(input, w.N), ScalarType.Float32);
        Tensor? b = bias is null || (bias.dtype == ScalarType.Float32 && bias.is_contiguous())
            ? bias
            : bias.to(ScalarType.Float32).contiguous();
        if (rows > 0)
        {
            fixed (byte* xBytes = x.bytes, yBytes = y.bytes)
            {
                fixed (byte* biasBytes = b is null ? default : b.bytes)
                {
                    RunDynamic(w.Dot, (float*)xBytes, rows, blocking, (float*)yBytes, (float*)biasBytes);
                }
            }
        }
        return (input.dtype == ScalarType.Float32 ? y : y.to(input.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>False makes BFloat16 calls take the float kernels on rounded activations even where the assembled
    /// vdpbf16ps kernels run (tests compare both).</summary>
    internal bool AssembledBf16 { get; init; } = true;

    /// <summary><see cref="DynamicActivations.BFloat16"/>: the bf16 GEMM from <see cref="Bf16GemmMinRows"/> rows,
    /// the one-row bf16 panel kernels below, or the float kernels on the activations rounded to bfloat16 (CPUs
    /// without AVX512_BF16, float8 weights).</summary>
    private unsafe Tensor LinearBFloat16(CpuPreparedWeight w, Tensor input, Tensor? bias)
    {
        KernelChecks.CheckLinear(input, w, bias);
        CheckCpu(input, "input");
        if (bias is not null) CheckCpu(bias, "bias");
        if (input.dtype is not (ScalarType.Float32 or ScalarType.BFloat16))
            throw new ArgumentException($"The CPU kernels take Float32 or BFloat16 inputs; got {input.dtype}.", nameof(input));
        int rows = checked((int)(input.NumberOfElements / w.K));
        if (RunsBf16Gemm(w, rows)) return Bf16Gemm(w, input, bias, rows);
        using var scope = NewDisposeScope();
        // Fewer rows than the GEMM takes: one-row tiles, each unit decoded in registers (no block to reuse).
        const int tileRows = 1;
        DotKernel? kernel = AssembledBf16 && w.Format is CpuWeightFormat.Int8 or CpuWeightFormat.Int4 or
            CpuWeightFormat.Int2 ? DotKernels.Bf16(w.Dot.Format, tileRows) : null;
        if (kernel is not { } bf16)
        {
            Tensor rounded = DynamicActivationReference.RoundToBFloat16(input);
            Tensor result = Linear(rounded, w, bias);
            return (result.dtype == input.dtype ? result : result.to(input.dtype)).MoveToOuterDisposeScope();
        }
        Tensor x = input.dtype == ScalarType.Float32 ? input : input.to(ScalarType.Float32);
        if (!x.is_contiguous()) x = x.contiguous();
        Tensor y = empty(TensorSizes.WithLast(input, w.N), ScalarType.Float32);
        Tensor? b = bias is null || (bias.dtype == ScalarType.Float32 && bias.is_contiguous())
            ? bias
            : bias.to(ScalarType.Float32).contiguous();
        if (rows > 0)
        {
            fixed (byte* xBytes = x.bytes, yBytes = y.bytes)
            {
                fixed (byte* biasBytes = b is null ? default : b.bytes)
                {
                    using var activations = new Bf16Activations((float*)xBytes, rows, w.Dot, tileRows);
                    RunDot(w.Dot, activations, bf16, (float*)yBytes, (float*)biasBytes);
                }
            }
        }
        return (input.dtype == ScalarType.Float32 ? y : y.to(input.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>Rows from which bf16 activations run the bf16 GEMM (weights decoded once per block for all rows)
    /// instead of the panel kernels, which decode in registers once per four rows.</summary>
    internal const int Bf16GemmMinRows = 4;

    /// <summary>True when a bf16 call of <paramref name="rows"/> rows on <paramref name="w"/> runs the bf16 GEMM:
    /// int8/int4/int2 weights, AVX512_BF16 code assembled here, and an instance that may take it.</summary>
    private bool RunsBf16Gemm(CpuPreparedWeight w, int rows) =>
        AssembledBf16 && rows >= Bf16GemmMinRows && w.Format is CpuWeightFormat.Int8 or CpuWeightFormat.Int4 or
            CpuWeightFormat.Int2 && Jit.Bf16GemmAssembler.MissingFeature is null && Bf16Panels.IsAccelerated;

    /// <summary>The bf16 GEMM: x rounded to bf16 (as is when it is bf16), exact codes, float32 sums, y in x's dtype.
    /// Inputs already checked.</summary>
    private unsafe Tensor Bf16Gemm(CpuPreparedWeight w, Tensor input, Tensor? bias, int rows)
    {
        using var scope = NewDisposeScope();
        bool bf16 = input.dtype == ScalarType.BFloat16;
        Tensor x = input.is_contiguous() ? input : input.contiguous();
        Tensor y = empty(TensorSizes.WithLast(input, w.N), input.dtype);
        Tensor? b = bias is null || (bias.dtype == ScalarType.Float32 && bias.is_contiguous())
            ? bias
            : bias.to(ScalarType.Float32).contiguous();
        DotWeight dot = w.Dot;
        fixed (byte* xBytes = x.bytes, yBytes = y.bytes)
        {
            fixed (byte* biasBytes = b is null ? default : b.bytes)
            {
                using var rowsData = new Bf16Rows(xBytes, bf16, rows, dot);
                var job = new Bf16GemmJob(dot, rowsData, yBytes, bf16, (float*)biasBytes);
                CpuParallel.Run(job, job.Blocks, Parallel(rows, w.K, w.N));
            }
        }
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>The int8-activation matmul on raw buffers: x (rows, K) float, y (rows, N).</summary>
    internal unsafe void RunDynamic(DotWeight w, float* x, int rows, ActivationBlocking blocking, float* y,
        float* bias)
    {
        DotKernel kernel = DotKernelFor(w.Format, rows, out int tileRows, symmetric: true);
        using DotActivations activations = DotActivations.Quantize(x, rows, w, blocking, tileRows);
        RunDot(w, activations, kernel, y, bias);
    }

    /// <summary>The int8-activation matmul of prepared activations: y (rows, N) = x · dequant(W)ᵀ + bias.</summary>
    private unsafe void RunDot(DotWeight w, IDotActivations x, DotKernel kernel, float* y, float* bias)
    {
        int chunk = Math.Max(1, ChunkRows(w.N, x.Rows) / DotFormats.PanelColumns);
        var job = new DotJob(w, x, kernel, y, bias, chunk);
        CpuParallel.Run(job, (w.Panels + chunk - 1) / chunk, Parallel(x.Rows, w.K, w.N));
    }

    /// <summary>The tile height and kernel for <paramref name="rows"/> activation rows; <paramref name="symmetric"/>
    /// when every activation code lies in [-127, 127] (see <see cref="DotKernels.Get"/>).</summary>
    private DotKernel DotKernelFor(DotFormat format, int rows, out int tileRows, bool symmetric)
    {
        tileRows = rows >= DotKernels.GemmMinRows ? DotKernels.GemmTileRows : 1;
        return DotKernels.Get(ResolvedDotPath, format, tileRows, symmetric);
    }
}
