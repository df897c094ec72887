using Quanto.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Quanto.Kernels.Cpu;

/// <summary>
/// SIMD kernels for CPU inference: y = x · dequant(W)ᵀ (+ bias) on int8, int4, int2 and float8 weights without
/// materialising the float weight (managed Vector512 / 256 / 128 or scalar code, chosen at construction:
/// <see cref="CpuKernelPath"/>), and with int8 activations (W8A8, dynamic activations: exact int32 dot products on
/// AVX-512 VNNI code assembled at run time, AVX-VNNI, AVX2 or portable SIMD, chosen from CPUID). Uses every core
/// with a light thread pool (<see cref="Threads"/>). Inputs are CPU Float32 or BFloat16 (converted to Float32 at the
/// edge; the result has the input's dtype). On the Vector512 and Vector256 paths, float32 calls of 4 rows and more
/// (Vector256: 16) on qint8/qint4/qint2 weights run the float GEMM (Cpu/Int8/FloatGemmJob.cs: weights decoded to
/// float32 once per block of 64 columns x 256 inputs and reused by every row; 6-row x 64-column register tiles,
/// 6 x 16 on AVX2), and calls of 1 to 3 rows on qint8/qint4/qint2 weights the Dot-layout GEMV
/// (Cpu/Int8/DotGemv.cs: 16 output columns per zmm, or per two ymm on AVX2, codes decoded in place), so those
/// weights keep one layout for every row count (on Vector256, calls of 4 to 15 rows use the block layout's GEMM).
/// </summary>
/// <remarks>
/// Register it ahead of the torch fallback with <c>QuantKernels.Register(CpuKernels.Instance, 100)</c>; it declines
/// non-CPU inputs, so a GPU backend can sit beside it. Weight-only formats accumulate in float32 over the exact
/// dequantized values (max |err| / max |y| within 1e-5 of F.linear on <c>Dequantize()</c>); activations are never
/// quantized behind the caller's back. When libtorch ops run between these kernels on few cores, set
/// OMP_WAIT_POLICY=PASSIVE in the environment: libtorch's OpenMP threads otherwise spin on the cores these kernels use.
/// </remarks>
public sealed partial class CpuKernels : IQuantKernels
{
    /// <summary>The shared instance: the widest path this CPU supports, all cores.</summary>
    public static CpuKernels Instance { get; } = new();

    /// <summary>Creates a backend on a given path (tests and benchmarks force paths this way).</summary>
    /// <param name="path">The SIMD path; <see cref="CpuKernelPath.Auto"/> picks <see cref="CpuFeatures.Best"/>.</param>
    /// <param name="multiThreaded">False runs every call on the calling thread only.</param>
    /// <exception cref="PlatformNotSupportedException">This CPU cannot run <paramref name="path"/>.</exception>
    public CpuKernels(CpuKernelPath path = CpuKernelPath.Auto, bool multiThreaded = true)
    {
        if (!CpuFeatures.IsSupported(path))
            throw new PlatformNotSupportedException($"This CPU cannot run the {path} kernels; use one of " +
                $"{string.Join(", ", CpuFeatures.Supported)} or Auto.");
        Path = path == CpuKernelPath.Auto ? CpuFeatures.Best : path;
        KeepsFloatCopies = path == CpuKernelPath.Auto;
        MultiThreaded = multiThreaded;
        Name = "cpu-" + Path.ToString().ToLowerInvariant();
    }

    /// <summary>
    /// Threads the CPU kernels use per call (the caller plus workers; every instance shares them). Starts at the
    /// QUANTO_NUM_THREADS environment variable when set, else <see cref="Environment.ProcessorCount"/>. It is
    /// independent of libtorch's <c>torch.set_num_threads</c>, which does not reach these threads: to give both the
    /// same budget, set both (<c>CpuKernels.Threads = torch.get_num_threads();</c>). Takes effect from the next call.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Below 1 or above 64.</exception>
    public static int Threads
    {
        get => CpuParallel.Threads;
        set => CpuParallel.Threads = value;
    }

    /// <summary>
    /// Weights with at most this many elements also keep a float32 copy in the CPU backend's prepared form (64 Ki by
    /// default: 256 KB, a 128 x 512 layer), so that calls of 16 rows and more run libtorch's F.linear on it, which is
    /// faster there than the quantized kernel. Counted in <c>PreparedWeight.FloatCopyBytes</c>. Read
    /// when a weight is prepared; 0 keeps no copies. Only <see cref="Instance"/> and other Auto-path instances keep
    /// them: an instance made for one SIMD path runs that path.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative.</exception>
    public static long FloatCopyLimit
    {
        get => Volatile.Read(ref _floatCopyLimit);
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            Volatile.Write(ref _floatCopyLimit, value);
        }
    }

    private static long _floatCopyLimit = 64 * 1024;

    /// <summary>True when this instance may keep float copies (made for the Auto path).</summary>
    internal bool KeepsFloatCopies { get; }

    /// <summary>The path every call of this instance runs.</summary>
    public CpuKernelPath Path { get; }

    /// <summary>True when calls use every core.</summary>
    public bool MultiThreaded { get; }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    /// <remarks>CPU inputs in Float32 or BFloat16; qint8, qint4, qint2 and the float8 qtypes, with input features
    /// below 2^31 / 4 (the padded activations of one row are indexed with int).</remarks>
    public bool CanRun(QuantizedWeight weight, ScalarType inputDtype, Device device)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(device);
        if (device.type != DeviceType.CPU) return false;
        if (inputDtype is not (ScalarType.Float32 or ScalarType.BFloat16)) return false;
        if (CpuWeightFormats.Of(weight.QType) is null || weight.Shape.Length < 2) return false;
        long k = weight.NumberOfElements / weight.Shape[0];
        return k < int.MaxValue / 8 && weight.Shape[0] < int.MaxValue && weight.NumberOfElements / 2 < int.MaxValue;
    }

    /// <inheritdoc />
    public PreparedWeight Prepare(QuantizedWeight weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        CpuWeightFormat format = CpuWeightFormats.Of(weight.QType)
            ?? throw new NotSupportedException($"The CPU kernels do not run {weight.QType.QuantoName()} weights.");
        if (!CanRun(weight, ScalarType.Float32, CPU))
            throw new NotSupportedException($"The CPU kernels cannot run {weight}: it must be at least 2-D, with " +
                "fewer than 2^28 input features.");
        return new CpuPreparedWeight(weight, this, format,
            floatCopy: KeepsFloatCopies && weight.NumberOfElements <= FloatCopyLimit);
    }

    /// <inheritdoc />
    /// <remarks>Weights small enough to keep a float32 copy (<see cref="FloatCopyLimit"/>) run libtorch's F.linear on
    /// it from 16 activation rows on, where it is faster (see Cpu/FloatCopyRoutes.cs); both compute in float32.</remarks>
    public Tensor Linear(Tensor input, PreparedWeight weight, Tensor? bias)
    {
        var w = KernelChecks.Expect<CpuPreparedWeight>(weight, this);
        KernelChecks.CheckLinear(input, w, bias);
        CheckCpu(input, "input");
        if (bias is not null) CheckCpu(bias, "bias");
        if (input.dtype is not (ScalarType.Float32 or ScalarType.BFloat16))
            throw new ArgumentException($"The CPU kernels take Float32 or BFloat16 inputs; got {input.dtype}.", nameof(input));
        int rows = checked((int)(input.NumberOfElements / w.K));
        if (w.FloatCopy is { } copy && FloatCopyRoutes.UseCopy(rows)) return CopyLinear(copy, input, bias);
        // bf16 activations times exact codes are exact in float32: the bf16 GEMM computes what this kernel does,
        // with float32 sums, and returns bf16 as this path would.
        return input.dtype == ScalarType.BFloat16 && KeepsFloatCopies && RunsBf16Gemm(w, rows)
            ? Bf16Gemm(w, input, bias, rows)
            : KernelLinear(w, input, bias);
    }

    /// <summary>F.linear on the float32 copy, in float32 (as the kernel computes), returned in x's dtype.</summary>
    private static Tensor CopyLinear(Tensor copy, Tensor input, Tensor? bias)
    {
        if (input.dtype == ScalarType.Float32 && (bias is null || bias.dtype == ScalarType.Float32))
            return nn.functional.linear(input, copy, bias);
        using var scope = NewDisposeScope();
        Tensor y = nn.functional.linear(input.to(ScalarType.Float32), copy, bias?.to(ScalarType.Float32));
        return y.to(input.dtype).MoveToOuterDisposeScope();
    }

    private unsafe Tensor KernelLinear(CpuPreparedWeight w, Tensor input, Tensor? bias)
    {
        // Every TorchSharp call costs microseconds against a ~0.3 ms GEMV: convert or copy only when needed.
        using var scope = NewDisposeScope();
        Tensor x = input.dtype == ScalarType.Float32 ? input : input.to(ScalarType.Float32);
        if (!x.is_contiguous()) x = x.contiguous();
        int rows = checked((int)(x.NumberOfElements / w.K));
        long[] outShape = TensorSizes.WithLast(input, w.N);
        Tensor y = empty(outShape, ScalarType.Float32);
        Tensor? b = bias is null || (bias.dtype == ScalarType.Float32 && bias.is_contiguous())
            ? bias
            : bias.to(ScalarType.Float32).contiguous();
        if (rows > 0) LinearFloat(w, x, rows, y, b);
        return (input.dtype == ScalarType.Float32 ? y : y.to(input.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>Runs the float kernel on contiguous Float32 tensors (x: rows x K, y: rows x N).</summary>
    internal unsafe void LinearFloat(CpuPreparedWeight w, Tensor x, int rows, Tensor y, Tensor? bias)
    {
        if (RunsFloatGemm(w, rows))
        {
            FloatGemm(w, x, rows, y, bias);
            return;
        }
        if (RunsDotGemv(w, rows))
        {
            DotGemv(w, x, rows, y, bias);
            return;
        }
        w.EnsureBlocks();
        fixed (byte* xBytes = x.bytes, yBytes = y.bytes)
        {
            fixed (byte* biasBytes = bias is null ? default : bias.bytes)
            {
                using var activations = CpuActivations.Create((float*)xBytes, rows, w);
                var job = new FloatJob(w, activations, (float*)yBytes, (float*)biasBytes,
                    CpuKernelDispatch.Select(Path, w.Format, rows), ChunkRows(w.N, rows));
                CpuParallel.Run(job, (w.N + job.ChunkRows - 1) / job.ChunkRows, Parallel(rows, w.K, w.N));
            }
        }
    }

    /// <summary>False keeps float32 calls of qint8/qint4/qint2 weights on the panel GEMM (tests compare both).</summary>
    internal bool FloatGemmEnabled { get; init; } = true;

    /// <summary>Rows from which float32 activations on qint8/qint4/qint2 weights run the float GEMM (weights decoded
    /// once per block of 64 columns for all rows, 6 x 64 register tiles) instead of the 4 x 4 panel GEMM or the
    /// GEMV. Measured at 4096 x 4096, 2 threads: at 3 rows the GEMV is faster for qint8 and qint2 (a tie for
    /// qint4), from 4 rows the float GEMM for all three.</summary>
    internal const int FloatGemmMinRows = 4;

    /// <summary>The same on the Vector256 path (6 x 16 tiles), where the 4 x 4 panel GEMM holds on longer: measured
    /// at 4096 x 4096 on Zen 3, 2 threads, it is faster at 4 rows, even at 8, and the float GEMM from 16 rows (1.5x
    /// at 128).</summary>
    internal const int FloatGemmMinRows256 = 16;

    /// <summary>Rows from which this instance runs the float GEMM (tests lower it to reach every tile height).</summary>
    internal int FloatGemmRows { get; init; } = -1;

    private int FloatGemmThreshold =>
        FloatGemmRows > 0 ? FloatGemmRows : Path == CpuKernelPath.Vector256 ? FloatGemmMinRows256 : FloatGemmMinRows;

    /// <summary>True when a float32 call of <paramref name="rows"/> rows on <paramref name="w"/> runs the float GEMM:
    /// qint8/qint4/qint2 weights on the Vector512 path (AVX-512) or the Vector256 path (AVX2 + FMA).</summary>
    private bool RunsFloatGemm(CpuPreparedWeight w, int rows) =>
        FloatGemmEnabled && rows >= FloatGemmThreshold && Int8.FloatPanels.Runs(Path)
        && w.Format is CpuWeightFormat.Int8 or CpuWeightFormat.Int4 or CpuWeightFormat.Int2;

    /// <summary>True when a float32 call of <paramref name="rows"/> rows on <paramref name="weight"/> would run the
    /// float GEMM (tests check that they time the kernel they name).</summary>
    internal bool RunsFloatGemmFor(PreparedWeight weight, int rows) =>
        RunsFloatGemm(KernelChecks.Expect<CpuPreparedWeight>(weight, this), rows);

    /// <summary>False keeps float32 GEMV calls (1 to 3 rows) of qint8/qint4/qint2 weights on the block-layout GEMV
    /// (GemvKernel) instead of the Dot-layout GEMV (tests compare both, the bench's <c>-block</c> rows time it).</summary>
    internal bool DotGemvEnabled { get; init; } = true;

    /// <summary>True when a float32 call of <paramref name="rows"/> rows on <paramref name="w"/> runs the Dot-layout
    /// GEMV (Cpu/Int8/DotGemv.cs): fewer rows than the float GEMM, on the Vector512 or Vector256 path where this CPU
    /// runs that form (AVX-512 F; AVX2 + FMA), for qint8/qint4/qint2 weights (qint2 at 4096 x 4096: 2.7x the block
    /// GEMV on Zen 3's AVX2, 1.6x at one row and 2.6x at three on Zen 4's AVX-512).</summary>
    private bool RunsDotGemv(CpuPreparedWeight w, int rows) =>
        DotGemvEnabled && rows <= Int8.DotGemv.MaxRows && Int8.DotGemv.Supports(Path)
        && w.Format is CpuWeightFormat.Int8 or CpuWeightFormat.Int4 or CpuWeightFormat.Int2;

    /// <summary>The Dot-layout GEMV on contiguous Float32 tensors (x: rows x K, y: rows x N).</summary>
    private unsafe void DotGemv(CpuPreparedWeight w, Tensor x, int rows, Tensor y, Tensor? bias)
    {
        Int8.DotWeight dot = w.Dot;
        dot.RecordRun();
        fixed (byte* xBytes = x.bytes, yBytes = y.bytes)
        {
            fixed (byte* biasBytes = bias is null ? default : bias.bytes)
            {
                using var rowsData = new Int8.DotGemvRows((float*)xBytes, rows, dot);
                var job = new Int8.DotGemvJob(Path, dot, rowsData, (float*)yBytes, (float*)biasBytes);
                CpuParallel.Run(job, job.Chunks, Parallel(rows, w.K, w.N));
            }
        }
    }

    /// <summary>The float GEMM on contiguous Float32 tensors (x: rows x K, y: rows x N) through the weight's
    /// <see cref="CpuPreparedWeight.Dot"/> layout.</summary>
    private unsafe void FloatGemm(CpuPreparedWeight w, Tensor x, int rows, Tensor y, Tensor? bias)
    {
        Int8.DotWeight dot = w.Dot;
        fixed (byte* xBytes = x.bytes, yBytes = y.bytes)
        {
            fixed (byte* biasBytes = bias is null ? default : bias.bytes)
            {
                using var rowsData = new Int8.FloatRows((float*)xBytes, rows, dot);
                var job = new Int8.FloatGemmJob(dot, rowsData, (float*)yBytes, (float*)biasBytes, Path);
                CpuParallel.Run(job, job.Blocks, Parallel(rows, w.K, w.N));
            }
        }
    }

    /// <summary>
    /// Multiply-adds from which a call is split over the threads: below it (a 128 x 512 layer at one row is 64 Ki),
    /// waking the workers costs more than they save, so the caller does it all.
    /// </summary>
    internal const long ParallelMinMacs = 1L << 19;

    /// <summary>True when a (rows x k) by (n x k) product is worth the thread pool.</summary>
    private bool Parallel(int rows, int k, int n) => MultiThreaded && (long)rows * k * n >= ParallelMinMacs;

    /// <summary>
    /// Output rows per work item: about 8 items per thread for load balance (chunks are claimed dynamically), a
    /// multiple of 4 (the GEMM panel height) and at least 16 rows so the per-item cost stays negligible.
    /// </summary>
    private static int ChunkRows(int n, int rows)
    {
        int items = CpuParallel.Threads * 8;
        int chunk = Math.Max(16, (n + items - 1) / items);
        return (chunk + 3) / 4 * 4;
    }

    private static void CheckCpu(Tensor tensor, string name)
    {
        if (tensor.device_type != DeviceType.CPU)
            throw new ArgumentException($"The CPU kernels need CPU tensors; {name} is on {tensor.device}.", name);
    }

    private sealed unsafe class FloatJob(
        CpuPreparedWeight weight, CpuActivations x, float* y, float* bias,
        delegate*<CpuPreparedWeight, CpuActivations, int, int, float*, float*, void> kernel, int chunkRows) : CpuJob
    {
        public int ChunkRows { get; } = chunkRows;

        public override void Run(int chunk)
        {
            int n0 = chunk * ChunkRows;
            kernel(weight, x, n0, Math.Min(weight.N, n0 + ChunkRows), y, bias);
        }
    }
}
