using System.Globalization;
using Quanto;
using Quanto.Bench;

// Quanto.Bench: the CPU kernels' performance table. Usage in Quanto.Bench/README.md and BenchOptions.Usage.
// libtorch's OpenMP threads spin after every parallel op by default and then compete with the kernels' threads for
// the same cores (on 2 vCPUs this made a 0.6 ms call take 11 ms). Passive waiting, set before libtorch loads, keeps
// both pools honest; the torch baselines run under the same setting. An explicit OMP_WAIT_POLICY is left alone.
TorchEnvironment.SetIfUnset("OMP_WAIT_POLICY", "PASSIVE");
// Every format, the torch baselines included, reuses freed multi-MB blocks instead of faulting fresh pages per call
// (see TorchEnvironment.ReuseFreedMemory).
TorchEnvironment.ReuseFreedMemory();
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
BenchOptions options;
try
{
    options = BenchOptions.Parse(args);
    _ = BenchFormat.Selected(options.Formats);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}

if (options.FloatCopyLimit is long limit) Quanto.Kernels.Cpu.CpuKernels.FloatCopyLimit = limit;
foreach (string line in BenchHeader.Lines(options)) Console.WriteLine(line);
if (options.Models)
{
    ModelBench.Run(options.Quick, options.Only); // whole-model rows (Quanto.Models): TinyLlama-1.1B and BERT-base shapes
    return 0;
}
if (options.MiniLm)
{
    MiniLmBench.Run(options.TextFolder, options.Only);
    return 0;
}
if (options.Attention)
{
    AttentionBench.Run(options.Quick); // one layer's decode attention against libtorch's ops on the same cache
    return 0;
}
if (options.Gptq)
{
    GptqBench.Run();
    return 0;
}
if (options.Overhead)
{
    ThreadOverhead.Print();
    return 0;
}

var rows = new List<BenchRow>();
var runner = new BenchRunner(options, rows);
if (options.Custom)
{
    foreach (BenchShape shape in options.Shapes) runner.Linear(shape);
    if (options.Mlp) runner.Mlp(4096, 11008);
    if (options.CnnOnly) CnnBench.Run(runner);
}
else if (options.CnnOnly)
{
    CnnBench.Run(runner);
}
else
{
    foreach (int m in options.Quick ? [1] : new[] { 1, 16, 128 }) runner.Linear(new BenchShape(m, 4096, 4096, "llama7b"));
    if (!options.Quick)
    {
        runner.Mlp(4096, 11008);
        CnnBench.Run(runner);
    }
}

BenchRow.PrintTable(rows);
if (options.Ilgpu)
{
    Console.WriteLine();
    Console.WriteLine("ILGPU backends (GEMV, median per call incl. moving x and y; the CPU accelerator simulates GPU threads):");
    Console.WriteLine(IlgpuBenchmark.ToMarkdown(IlgpuBenchmark.RunEveryAccelerator(n: 4096, k: 4096, m: 1, iterations: 5)));
}
if (options.CsvPath is not null)
{
    File.WriteAllLines(options.CsvPath, rows.Select(r => r.Csv()).Prepend(BenchRow.CsvHeader));
    Console.WriteLine($"Wrote {rows.Count} rows to {options.CsvPath}");
}
return 0;
