using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// The weight-only float32 GEMV (1 to 3 rows) on the <see cref="DotWeight"/> layout, AVX-512 (Int8/DotGemv512.cs: a
/// zmm holds one input of a panel's 16 output columns) or AVX2 + FMA (Int8/DotGemv256.cs: a 64-byte unit is two
/// ymm, columns 0-7 and 8-15): no cross-lane shuffle, no horizontal sum. Each 32-bit lane of a unit holds
/// consecutive inputs of one column; a code is decoded where it lies: one and (qint4, qint2) or shift and and
/// (qint8) puts code * 2^bit in the lane, vcvtdq2ps makes it a float exactly, and the FMA multiplies it by the
/// activation broadcast from memory, which <see cref="DotGemvRows"/> pre-multiplied by 2^-bit (qint8 folds its one
/// 2^-24 into the scale). Per group and row: s * sum(q * x) - t * sum(x), over several accumulator chains.
/// </summary>
/// <remarks>
/// The products are those of the other weight-only kernels (code times x in float32, powers of two exact), only the
/// accumulation order differs; an activation below 2^-98 in magnitude would lose bits to the pre-scaling (at most
/// 2^-28, qint2's input 11; qint4's at most 2^-24: below 2^-102), where it contributes below 2^-94 * scale. Panels are
/// read in order, a contiguous stream, with a software prefetch <see cref="Ahead"/> bytes ahead (the hardware
/// prefetchers stop at each 4 KiB page).
/// </remarks>
internal static unsafe class DotGemv
{
    /// <summary>Prefetch distance in bytes: 32 cache lines ahead of the read.</summary>
    public const int Ahead = 2048;

    /// <summary>Rows it runs at most.</summary>
    public const int MaxRows = 3;

    /// <summary>True where this CPU runs the <paramref name="path"/> form: Vector512 needs AVX-512 F, Vector256 AVX2
    /// and FMA; every <see cref="DotFormat"/> runs on both, no other path runs it.</summary>
    public static bool Supports(CpuKernelPath path) => path switch
    {
        CpuKernelPath.Vector512 => Avx512F.IsSupported,
        CpuKernelPath.Vector256 => Avx2.IsSupported && Fma.IsSupported,
        _ => false,
    };

    /// <summary>y[r, columns of panels [panel0, panel1)] = x[r] · W + bias for every row of <paramref name="x"/>, in
    /// the <paramref name="path"/> form.</summary>
    /// <exception cref="PlatformNotSupportedException">This CPU cannot run <paramref name="path"/>.</exception>
    public static void Run(CpuKernelPath path, DotWeight w, DotGemvRows x, int panel0, int panel1, float* y,
        float* bias)
    {
        if (!Supports(path))
            throw new PlatformNotSupportedException($"This CPU cannot run the {path} Dot GEMV.");
        if (x.Rows is < 1 or > MaxRows)
            throw new ArgumentOutOfRangeException(nameof(x), x.Rows, "The Dot GEMV runs 1 to 3 rows.");
        bool wide = path == CpuKernelPath.Vector512;
        switch (x.Rows)
        {
            case 1 when wide: DotGemv512.Panels<One>(w, x, panel0, panel1, y, bias); break;
            case 2 when wide: DotGemv512.Panels<Rows2>(w, x, panel0, panel1, y, bias); break;
            case 3 when wide: DotGemv512.Panels<Rows3>(w, x, panel0, panel1, y, bias); break;
            case 1: DotGemv256.Panels<One>(w, x, panel0, panel1, y, bias); break;
            case 2: DotGemv256.Panels<Rows2>(w, x, panel0, panel1, y, bias); break;
            default: DotGemv256.Panels<Rows3>(w, x, panel0, panel1, y, bias); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Prefetch(byte* p)
    {
        if (Sse.IsSupported) Sse.Prefetch0(p + Ahead);
    }

    /// <summary>Row <paramref name="r"/>'s 16 columns of <paramref name="panel"/> (+ bias) from
    /// <paramref name="lanes"/>, fewer in a last panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void StorePartial(DotWeight w, int panel, int r, float* lanes, float* y, float* bias)
    {
        int col0 = panel * DotFormats.PanelColumns;
        float* target = y + (long)r * w.N + col0;
        int cols = w.N - col0;
        for (int c = 0; c < cols; c++) target[c] = bias == null ? lanes[c] : lanes[c] + bias[col0 + c];
    }
}

/// <summary>The Dot GEMV over the thread pool: chunk i is a run of <see cref="PanelsPerChunk"/> panels.</summary>
internal sealed unsafe class DotGemvJob(CpuKernelPath path, DotWeight weight, DotGemvRows x, float* y, float* bias)
    : CpuJob
{
    /// <summary>Panels per chunk: about 8 chunks per thread (claimed dynamically), at least one panel.</summary>
    public int PanelsPerChunk { get; } = ChunkPanels(weight);

    /// <summary>Chunks to run.</summary>
    public int Chunks => (weight.Panels + PanelsPerChunk - 1) / PanelsPerChunk;

    /// <summary>Bytes of the next weight a waiting worker prefetches at most: its L2 on Zen 4 (1 MiB); Quanto.Bench
    /// --models, 2 vCPU Zen 4, int4 TinyLlama-1.1B shape, interleaved with prefetching off: 384 KiB gave 0.9 ms a
    /// step, 1 MiB 1.6, 4 and 16 MiB 0.9 (run-to-run noise is about 0.5 ms).</summary>
    internal const long PrefetchBytes = 1L << 20;

    private static int ChunkPanels(DotWeight w) =>
        Math.Max(1, (w.Panels + CpuParallel.Threads * 8 - 1) / (CpuParallel.Threads * 8));

    /// <summary>
    /// Prefetches (into L2) the panels of the weight that ran after this one last time (<see cref="DotWeight.Next"/>)
    /// that this worker will claim first, from the back: the last chunks' codes, scales and shifts, up to
    /// <see cref="PrefetchBytes"/>, stopping when the next job arrives. A prefetch never faults, so a weight disposed
    /// meanwhile costs nothing but the hint.
    /// </summary>
    internal override void PrefetchNext(int generation)
    {
        if (!Sse.IsSupported || weight.Next is not { } next) return;
        int perChunk = ChunkPanels(next);
        long groupFloats = (long)next.Groups * DotFormats.PanelColumns;
        long budget = PrefetchBytes;
        for (int panel = next.Panels - 1; panel >= 0 && budget > 0; panel--)
        {
            // Chunks are claimed from the back, panels within a chunk in order.
            int chunk0 = panel / perChunk * perChunk;
            int within = Math.Min(next.Panels, chunk0 + perChunk) - 1 - panel;
            int target = chunk0 + within;
            byte* codes = next.Codes + target * next.PanelBytes;
            for (long offset = 0; offset < next.PanelBytes; offset += 64)
            {
                Sse.Prefetch1(codes + offset);
                if ((offset & 4095) == 0 && CpuParallel.JobArrived(generation)) return;
            }
            Lines((byte*)(next.Scales + target * groupFloats), groupFloats * sizeof(float));
            if (next.Shifts != null) Lines((byte*)(next.Shifts + target * groupFloats), groupFloats * sizeof(float));
            budget -= next.PanelBytes + groupFloats * sizeof(float) * (next.Shifts != null ? 2 : 1);
        }

        static void Lines(byte* start, long bytes)
        {
            for (long offset = 0; offset < bytes; offset += 64) Sse.Prefetch1(start + offset);
        }
    }

    public override void Run(int chunk)
    {
        int panel0 = chunk * PanelsPerChunk;
        DotGemv.Run(path, weight, x, panel0, Math.Min(weight.Panels, panel0 + PanelsPerChunk), y, bias);
    }
}
