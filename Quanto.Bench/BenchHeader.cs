using System.Runtime.Intrinsics.X86;
using Quanto.Kernels.Cpu;
using Quanto.Kernels.Cpu.Int8;
using Quanto.Kernels.Cpu.Jit;
using static TorchSharp.torch;

namespace Quanto.Bench;

/// <summary>What the table was measured on, printed first: the CPU, its instruction sets, the kernel paths taken,
/// threads, mode and load.</summary>
internal static class BenchHeader
{
    public static IEnumerable<string> Lines(BenchOptions options)
    {
        yield return $"Quanto.Bench {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {CpuIsa.Brand}, " +
            $"{Environment.ProcessorCount} logical CPUs, {Load()}";
        yield return "ISA: " + string.Join(", ", new (string Name, bool Present)[]
        {
            ("AVX2", Avx2.IsSupported), ("FMA", Fma.IsSupported), ("AVX-512F/BW", Avx512F.IsSupported && Avx512BW.IsSupported),
            ("AVX512_VNNI", CpuIsa.Avx512Vnni), ("AVX512_BF16", CpuIsa.Avx512Bf16), ("AVX-VNNI", AvxVnni.IsSupported),
            ("AVX10.1", Avx10v1.IsSupported),
        }.Select(f => $"{f.Name} {(f.Present ? "yes" : "no")}"));
        yield return $"Kernels: float activations {CpuKernels.Instance.Name}; int8 activations (w8a8, *-dyn) " +
            $"{DotKernels.Get(DotKernels.Best, DotFormat.Int4, 1).Name} (paths here: {string.Join(", ", DotKernels.Supported)})";
        yield return $"Threads: kernels {CpuKernels.Threads}, TorchSharp {get_num_threads()}; mode " +
            (options.Hot ? "hot (one weight matrix reused)" : "cold (each format rotates through >= 256 MiB of copies)") +
            $"; {options.Rounds} round(s) x {options.Seconds:0.##} s per format; float copies for weights <= " +
            $"{CpuKernels.FloatCopyLimit} elements";
        yield return "Each row: median ms; weight GB/s = stored weight bytes / median; probe = 2-thread read bandwidth " +
            "measured just before that row; ratios against TorchSharp F.linear fp32 / bf16 on the same shape.";
    }

    private static string Load() =>
        File.Exists("/proc/loadavg") ? $"load average {string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3))}" : "";
}
