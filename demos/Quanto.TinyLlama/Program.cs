using System.Diagnostics;
using Quanto;
using Quanto.TinyLlama;

// dotnet run -c Release --project demos/Quanto.TinyLlama [-- --steps N] [--out folder]
int steps = new DemoOptions("").Steps;
string folder = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "quanto",
    "tinyllama");
for (int i = 0; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--steps" when int.TryParse(args[i + 1], out int n) && n > 0:
            steps = n;
            break;
        case "--out":
            folder = args[i + 1];
            break;
        default:
            Console.Error.WriteLine(
                $"Unknown or bad option {args[i]} {args[i + 1]}; use --steps N (> 0), --out folder.");
            return 2;
    }
}
TorchEnvironment.ReuseFreedMemory();
var clock = Stopwatch.StartNew();
IReadOnlyList<DemoRow> rows = TinyLlamaDemo.Run(new DemoOptions(folder, steps), Console.Out);
TinyLlamaDemo.Print(rows, Console.Out, clock.Elapsed);
return 0;
