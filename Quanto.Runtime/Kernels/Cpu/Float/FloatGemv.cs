using System.Runtime.Intrinsics;
using Quanto.Kernels.Cpu.Simd256;
using Quanto.Kernels.Cpu.Simd512;
using TorchSharp;
using static TorchSharp.torch;

namespace Quanto.Kernels.Cpu.Float;

/// <summary>
/// A float32 Linear at 1-3 activation rows on a large weight: y = x · Wᵀ (+ b) with <see cref="FloatGemvKernel"/>,
/// the weight read in place from its tensor (no copy, so a weight tied to an embedding table works as is), split over
/// Quanto's kernel threads (<see cref="CpuKernels.Threads"/>). For a Llama's float32 lm_head (32000 x 2048, 262 MB,
/// a third of the bytes of an int4 decode step), where libtorch's GEMV (MKL) reads well below the machine's
/// bandwidth. Callers ask <see cref="Runs"/> and use libtorch's F.linear where it says no.
/// </summary>
internal static unsafe class FloatGemv
{
    /// <summary>The most activation rows the kernel takes (from 4 rows libtorch's GEMM reuses the weight better).
    /// </summary>
    public const int MaxRows = 3;

    /// <summary>The environment variable that turns the kernel off when set to 0 (A/B runs against libtorch).
    /// </summary>
    public const string EnabledVariable = "QUANTO_FLOAT_GEMV";

    /// <summary>False sends every call to libtorch (Quanto.Bench's A/B; tests).</summary>
    internal static bool Enabled { get; set; } = Environment.GetEnvironmentVariable(EnabledVariable) != "0";

    /// <summary>
    /// Weights of fewer bytes stay on libtorch: below it a weight sits in cache between calls, where MKL's GEMV is as
    /// fast. The kernel's target, a 32000 x 2048 lm_head, is 262 MB.
    /// </summary>
    internal static long MinWeightBytes { get; set; } = 16L << 20;

    /// <summary>The SIMD path of <see cref="Linear"/> on this CPU: Vector512, else Vector256, else Scalar (which
    /// <see cref="Runs"/> declines).</summary>
    internal static CpuKernelPath BestPath { get; } =
        CpuFeatures.IsSupported(CpuKernelPath.Vector512) && Vector512.IsHardwareAccelerated ? CpuKernelPath.Vector512
        : CpuFeatures.IsSupported(CpuKernelPath.Vector256) ? CpuKernelPath.Vector256
        : CpuKernelPath.Scalar;

    /// <summary>Multiply-adds from which a call is split over the threads (as the quantized kernels do).</summary>
    private const long ParallelMinMacs = 1L << 19;

    /// <summary>
    /// True when <see cref="Linear"/> takes this call and is the faster choice: the kernel is enabled and this CPU
    /// has a SIMD path; CPU float32 tensors; weight 2-D (N x K), contiguous, at least <see cref="MinWeightBytes"/>;
    /// input (..., K) with 1 to <see cref="MaxRows"/> rows; bias null or N contiguous floats; no autograd involved
    /// (the kernel records no graph).
    /// </summary>
    public static bool Runs(Tensor input, Tensor weight, Tensor? bias) =>
        Enabled && BestPath != CpuKernelPath.Scalar && weight.NumberOfElements * sizeof(float) >= MinWeightBytes &&
        Fits(input, weight, bias);

    /// <summary>The shape, dtype, device and autograd conditions of <see cref="Runs"/>, without the size and
    /// enablement ones (tests run the kernel on small weights).</summary>
    internal static bool Fits(Tensor input, Tensor weight, Tensor? bias)
    {
        if (weight.dim() != 2 || input.dim() < 1 || input.dtype != ScalarType.Float32 ||
            weight.dtype != ScalarType.Float32 || input.device_type != DeviceType.CPU ||
            weight.device_type != DeviceType.CPU || !weight.is_contiguous())
        {
            return false;
        }
        long n = weight.size(0), k = weight.size(1);
        if (k == 0 || n == 0 || input.size(-1) != k || k > int.MaxValue / 4 || n > int.MaxValue) return false;
        long rows = input.NumberOfElements / k;
        if (rows is < 1 or > MaxRows) return false;
        if (bias is not null && (bias.dim() != 1 || bias.size(0) != n || bias.dtype != ScalarType.Float32 ||
                                 bias.device_type != DeviceType.CPU || !bias.is_contiguous()))
        {
            return false;
        }
        return !is_grad_enabled() || !(input.requires_grad || weight.requires_grad || bias?.requires_grad == true);
    }

    /// <summary>y (..., N) = input (..., K) · weightᵀ (+ bias), float32, for a call <see cref="Fits"/> accepts.
    /// </summary>
    /// <param name="input">CPU float32 (..., K), 1-3 rows.</param>
    /// <param name="weight">CPU float32 (N, K), contiguous; read in place.</param>
    /// <param name="bias">Null or N floats.</param>
    /// <param name="path">Vector512 or Vector256 (Auto: <see cref="BestPath"/>).</param>
    /// <param name="multiThreaded">False runs on the calling thread only.</param>
    /// <exception cref="ArgumentException">A call <see cref="Fits"/> refuses, or a path this CPU cannot run.
    /// </exception>
    public static Tensor Linear(Tensor input, Tensor weight, Tensor? bias, CpuKernelPath path = CpuKernelPath.Auto,
        bool multiThreaded = true)
    {
        if (!Fits(input, weight, bias))
        {
            throw new ArgumentException($"The float32 GEMV takes CPU float32 (..., K) inputs of 1 to {MaxRows} rows " +
                $"and a contiguous (N, K) weight; got input {input.dtype} {string.Join("x", input.shape)}, weight " +
                $"{weight.dtype} {string.Join("x", weight.shape)}.", nameof(input));
        }
        if (path == CpuKernelPath.Auto) path = BestPath;
        if (path is not (CpuKernelPath.Vector512 or CpuKernelPath.Vector256) || !CpuFeatures.IsSupported(path))
            throw new ArgumentException($"The float32 GEMV runs Vector512 or Vector256 where supported; got {path}.",
                nameof(path));
        int n = (int)weight.size(0), k = (int)weight.size(1);
        int rows = (int)(input.NumberOfElements / k);
        using var scope = NewDisposeScope();
        Tensor x = input.is_contiguous() ? input : input.contiguous();
        Tensor y = empty(TensorSizes.WithLast(input, n), ScalarType.Float32);
        fixed (byte* xBytes = x.bytes, yBytes = y.bytes, wBytes = weight.bytes)
        {
            fixed (byte* biasBytes = bias is null ? default : bias.bytes)
            {
                var job = new Job((float*)wBytes, k, n, (float*)xBytes, (float*)yBytes, (float*)biasBytes,
                    Kernel(path, rows), ChunkRows(n));
                bool parallel = multiThreaded && (long)rows * k * n >= ParallelMinMacs;
                CpuParallel.Run(job, (n + job.ChunkRows - 1) / job.ChunkRows, parallel);
            }
        }
        return y.MoveToOuterDisposeScope();
    }

    private static delegate*<float*, int, int, float*, float*, float*, int, int, void> Kernel(CpuKernelPath path,
        int rows) => (path, rows) switch
    {
        (CpuKernelPath.Vector512, 1) => &FloatGemvKernel.Run<Vector512<float>, Width512, OneRow>,
        (CpuKernelPath.Vector512, 2) => &FloatGemvKernel.Run<Vector512<float>, Width512, TwoRows>,
        (CpuKernelPath.Vector512, _) => &FloatGemvKernel.Run<Vector512<float>, Width512, ThreeRows>,
        (_, 1) => &FloatGemvKernel.Run<Vector256<float>, Width256, OneRow>,
        (_, 2) => &FloatGemvKernel.Run<Vector256<float>, Width256, TwoRows>,
        _ => &FloatGemvKernel.Run<Vector256<float>, Width256, ThreeRows>,
    };

    /// <summary>Weight rows per work item: about 8 items per thread (chunks are claimed dynamically, so a thread the
    /// OS delays costs one item, not half the call), at least 64 rows, a multiple of 16 (so two threads never write
    /// the same cache line of y).</summary>
    private static int ChunkRows(int n)
    {
        int items = CpuParallel.Threads * 8;
        int chunk = Math.Max(64, (n + items - 1) / items);
        return (chunk + 15) / 16 * 16;
    }

    private sealed class Job(float* w, int k, int n, float* x, float* y, float* bias,
        delegate*<float*, int, int, float*, float*, float*, int, int, void> kernel, int chunkRows) : CpuJob
    {
        public int ChunkRows { get; } = chunkRows;

        public override void Run(int chunk)
        {
            int n0 = chunk * ChunkRows;
            kernel(w, k, n, x, y, bias, n0, Math.Min(n, n0 + ChunkRows));
        }
    }
}
