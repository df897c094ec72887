using System.Globalization;
using System.Runtime.Intrinsics.X86;
using Quanto;
using Quanto.Bench;
using Quanto.Kernels.Cpu;
using static TorchSharp.torch;

// Quanto.Bench: the performance table of issue #8. Usage:
//   dotnet run -c Release --project Quanto.Bench [-- --hot] [--quick] [--cnn] [--ilgpu] [--csv FILE] [--overhead]
// --ilgpu adds the ILGPU backends present (CUDA, OpenCL incl. PoCL, the CPU accelerator at 1024 x 1024): minutes.
// Default: each format rotates through enough weight copies (>= 256 MiB in all) that no call finds its weight in
// the last-level cache. --hot reuses one matrix every call (as llama.cpp's benchmark does).
// libtorch's OpenMP threads spin after every parallel op by default and then compete with the kernels' threads for
// the same cores (on 2 vCPUs this made a 0.6 ms call take 11 ms). Passive waiting, set before libtorch loads, keeps
// both pools honest; the torch baselines run under the same setting. An explicit OMP_WAIT_POLICY is left alone.
TorchEnvironment.SetIfUnset("OMP_WAIT_POLICY", "PASSIVE");
// Every format, the torch baselines included, reuses freed multi-MB blocks instead of faulting fresh pages per call
// (see TorchEnvironment.ReuseFreedMemory).
TorchEnvironment.ReuseFreedMemory();
var options = new HashSet<string>(args.Where(a => a.StartsWith("--", StringComparison.Ordinal)));
string? csvPath = args.SkipWhile(a => a != "--csv").Skip(1).FirstOrDefault();
bool hot = options.Contains("--hot");
bool quick = options.Contains("--quick");
long rotationBytes = hot ? 0 : 256L << 20;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

Console.WriteLine($"Quanto.Bench {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} logical CPUs, " +
    $"kernels {CpuKernels.Instance.Name} (AVX-VNNI: {AvxVnni.IsSupported}), {CpuParallel.Threads} threads, " +
    $"TorchSharp threads {get_num_threads()}, mode {(hot ? "hot (one weight matrix)" : "rotating (>= 256 MiB of weights)")}");
if (options.Contains("--overhead"))
{
    ThreadOverhead.Print();
    return;
}
Console.WriteLine($"Read bandwidth: a 512 MiB read on the kernels' {CpuParallel.Threads} threads, before each shape");

var rows = new List<BenchRow>();
var runner = new BenchRunner(MemoryBandwidth.MeasureGBps, rows);
bool cnnOnly = options.Contains("--cnn"); // just the MNIST-sized CNN rows
int[] ms = cnnOnly ? [] : quick ? [1] : [1, 16, 128];
using (var weight = Sized(4096, 4096, 1))
{
    foreach (int m in ms) runner.Linear(m == 1 ? "gemv" : "gemm", weight, m, rotationBytes);
}
if (!quick && !cnnOnly) runner.Mlp(4096, 11008, rotationBytes);
if (!quick) CnnBench.Run(runner);

BenchRow.PrintTable(rows);
if (options.Contains("--ilgpu"))
{
    Console.WriteLine();
    Console.WriteLine("ILGPU backends (GEMV, median per call incl. moving x and y; the CPU accelerator simulates GPU threads):");
    Console.WriteLine(IlgpuBenchmark.ToMarkdown(IlgpuBenchmark.RunEveryAccelerator(n: 4096, k: 4096, m: 1, iterations: 5)));
}
if (csvPath is not null)
{
    File.WriteAllLines(csvPath, rows.Select(r => r.Csv()).Prepend(BenchRow.CsvHeader));
    Console.WriteLine($"Wrote {rows.Count} rows to {csvPath}");
}

static Tensor Sized(int n, int k, int seed)
{
    var generator = new TorchSharp.torch.Generator((ulong)seed);
    return randn([n, k], generator: generator).mul(0.02f);
}
