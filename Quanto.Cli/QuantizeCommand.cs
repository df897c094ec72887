using System.Diagnostics;
using System.Globalization;
using Quanto.Quantization;
using Quanto.Serialization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Cli;

/// <summary>
/// <c>quanto quantize</c>: reads a safetensors checkpoint tensor by tensor, quantizes the selected weights with
/// <see cref="WeightQuantizer"/>, copies every other tensor unchanged, and writes optimum-quanto-compatible files.
/// </summary>
public static class QuantizeCommand
{
    /// <summary>Inputs at least this large show progress on stderr unless --no-progress.</summary>
    public const long ProgressThresholdBytes = 256L << 20;

    private static readonly string[] Header = ["tensor", "shape", "dtype -> qtype", "group", "before", "after"];

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(QuantizeOptions options, TextWriter stdout, TextWriter stderr)
    {
        using CheckpointSource source = CheckpointSource.Open(options.Input);
        CheckOutput(source, options);
        List<PlannedTensor> plan = QuantizePlan.Build(source, options);
        if (!plan.Any(p => p.Quantized))
        {
            stderr.WriteLine($"quanto: no tensor of {options.Input} matches: nothing to quantize " +
                $"(weights must be F32/F16/BF16, {QuantizePlan.DescribeRanks()}, named *.weight, and pass " +
                "--include/--exclude).");
            return ExitCodes.BadInput;
        }
        var metadata = new Dictionary<string, string>(source.Metadata, StringComparer.Ordinal)
        {
            ["quanto_weights"] = options.Weights.QuantoName(),
            ["quanto_tool"] = "quanto quantize (Quanto.NET)",
        };
        if (options.Weights.Info().IsPacked)
            metadata["quanto_group_size"] = options.GroupSize.ToString(CultureInfo.InvariantCulture);
        stdout.WriteLine($"Quantizing {source.Path} ({source.Tensors.Count} tensors, " +
            $"{TextTable.Bytes(source.DataBytes)}) to {options.Weights.QuantoName()}" +
            (options.Weights.Info().IsPacked ? $", group {options.GroupSize}, {options.OptimizerName} optimizer" : "") +
            $" -> {options.Output}");
        int[] widths = TextTable.Widths(Header, plan.Select(p => (IReadOnlyList<string>)
            [p.Source.Name, TextTable.Shape(p.Source.Entry.Shape),
                $"{SafetensorsDType.NameOf(p.Source.Entry.DType)} -> {Target(p, options)}", "", "1023.99 MiB",
                "1023.99 MiB"]));
        if (!options.Quiet)
        {
            stdout.WriteLine(TextTable.Row(Header, widths, 3, 4, 5));
            stdout.WriteLine(new string('-', widths.Sum() + 2 * (widths.Length - 1)));
        }
        bool progress = options.Progress ?? source.DataBytes >= ProgressThresholdBytes;
        var clock = Stopwatch.StartNew();
        long done = 0, before = 0, after = 0;
        long lastReport = -1;
        using QuantizedOutput output = QuantizedOutput.Create(options, metadata);
        Optimizer optimizer = options.CreateOptimizer();
        var inputKeys = source.Tensors.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        for (int i = 0; i < plan.Count; i++)
        {
            PlannedTensor item = plan[i];
            long weightBytes = Process(item, options, optimizer, output, inputKeys, out string target);
            before += item.Source.Entry.ByteLength;
            after += weightBytes;
            done += item.Source.Entry.ByteLength;
            if (!options.Quiet)
            {
                string dtype = SafetensorsDType.NameOf(item.Source.Entry.DType);
                stdout.WriteLine(TextTable.Row(
                    [item.Source.Name, TextTable.Shape(item.Source.Entry.Shape), $"{dtype} -> {target}",
                        item.GroupSize?.ToString(CultureInfo.InvariantCulture) ?? "",
                        TextTable.Bytes(item.Source.Entry.ByteLength), TextTable.Bytes(weightBytes)], widths, 3, 4, 5));
            }
            long second = clock.ElapsedMilliseconds / 1000;
            if (progress && (second != lastReport || i == plan.Count - 1))
            {
                lastReport = second;
                stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"[{i + 1}/{plan.Count}] {done / 1048576.0:0.0} / {source.DataBytes / 1048576.0:0.0} MB  " +
                    $"{clock.Elapsed.TotalSeconds:0.0} s  {item.Source.Name}"));
            }
        }
        output.Finish();
        int quantized = plan.Count(p => p.Quantized);
        stdout.WriteLine();
        stdout.WriteLine($"Quantized {quantized} of {plan.Count} tensors to {options.Weights.QuantoName()}; " +
            $"{plan.Count - quantized} kept as they were.");
        stdout.WriteLine($"Tensor data: {TextTable.Bytes(before)} -> {TextTable.Bytes(output.DataBytes)} " +
            $"({TextTable.Ratio(before, output.DataBytes)} smaller) in {clock.Elapsed.TotalSeconds:0.0} s.");
        foreach (string file in output.Written) stdout.WriteLine($"Wrote {file}");
        return ExitCodes.Ok;
    }

    /// <summary>Handles one tensor; returns the bytes it takes in the output (the weight's parts, or the copy).</summary>
    private static long Process(PlannedTensor item, QuantizeOptions options, Optimizer optimizer,
        QuantizedOutput output, HashSet<string> inputKeys, out string target)
    {
        Tensor tensor = item.Source.Read();
        if (!item.Quantized)
        {
            target = Target(item, options);
            output.Add(item.Source.Name, tensor);
            return item.Source.Entry.ByteLength;
        }
        QuantizedWeight weight;
        try
        {
            weight = WeightQuantizer.Quantize(tensor, options.Weights, options.GroupSize, optimizer); // group per shape
        }
        catch (ArgumentException e)
        {
            throw new QuantoFormatException(item.Source.File.Source,
                $"cannot quantize '{item.Source.Name}': {e.Message}", e);
        }
        finally
        {
            tensor.Dispose();
        }
        using (weight)
        {
            output.AddWeight(item.Module, weight);
            output.Map.Add(item.Module, new QuantizationSpec(options.Weights, null));
            AddActivationScales(item, output, weight.DType, inputKeys);
            target = Target(item, options);
            return weight.ByteSize;
        }
    }

    private static string Target(PlannedTensor item, QuantizeOptions options) =>
        item.Quantized ? options.Weights.QuantoName() : $"kept ({item.KeepReason})";

    /// <summary>optimum-quanto's frozen modules always carry scalar input/output scales (1.0 = not calibrated).</summary>
    private static void AddActivationScales(PlannedTensor item, QuantizedOutput output, ScalarType dtype,
        HashSet<string> inputKeys)
    {
        foreach (string name in new[] { QuantoKeys.InputScale, QuantoKeys.OutputScale })
        {
            string key = QuantoKeys.Join(item.Module, name);
            if (!inputKeys.Contains(key)) output.Add(key, ones([], dtype));
        }
    }

    private static void CheckOutput(CheckpointSource source, QuantizeOptions options)
    {
        string output = Path.GetFullPath(options.Output);
        string? folder = Path.GetDirectoryName(output);
        if (folder is null || !Directory.Exists(folder))
            throw new UsageException($"the output folder {folder} does not exist; create it first.");
        if (source.Files.Any(f => string.Equals(Path.GetFullPath(f), output, StringComparison.Ordinal)))
            throw new UsageException($"the output {options.Output} is the input; choose another name.");
        IEnumerable<string> targets = options.Format == OutputFormat.Qnt
            ? [output]
            : SafetensorsOutput.Targets(output);
        string? existing = targets.FirstOrDefault(File.Exists);
        if (existing is not null && !options.Force)
            throw new UsageException($"{existing} already exists; pass --force to replace it (atomically).");
    }
}
