using System.Globalization;
using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto.Cli;

/// <summary>
/// <c>quanto inspect</c>: lists a checkpoint's tensors (dtype, shape, bytes, qtype) and quantization map, and
/// validates it: headers and offsets, checksums (by reading every tensor), and the map against the tensors.
/// </summary>
public static class InspectCommand
{
    private static readonly string[] Header = ["tensor", "dtype", "shape", "bytes", "qtype"];

    /// <summary>Runs the command; 0 when the file is valid, 1 when problems were found.</summary>
    public static int Run(string path, bool verify, TextWriter stdout, TextWriter stderr)
    {
        List<string> problems = path.EndsWith(QntPackage.Extension, StringComparison.OrdinalIgnoreCase)
            ? InspectQnt(path, stdout)
            : InspectSafetensors(path, verify, stdout);
        stdout.WriteLine();
        if (problems.Count == 0)
        {
            stdout.WriteLine(verify ? "Valid: headers, checksums and the quantization map agree."
                : "Valid headers and quantization map (data not read: --no-verify).");
            return ExitCodes.Ok;
        }
        stderr.WriteLine($"quanto: {path}: {problems.Count} problem(s):");
        foreach (string problem in problems) stderr.WriteLine($"  - {problem}");
        return ExitCodes.BadInput;
    }

    private static List<string> InspectSafetensors(string path, bool verify, TextWriter stdout)
    {
        var problems = new List<string>();
        using CheckpointSource source = CheckpointSource.Open(path);
        string baseName = CheckpointFiles.TryBaseNameOf(source.WeightsPath) ??
            Path.GetFileNameWithoutExtension(source.WeightsPath);
        var (mapPath, how) = CheckpointFiles.ResolveMap(source.Folder, baseName, source.Record,
            CheckpointFiles.HoldsQuantizedKeys(source.Tensors.Select(t => t.Name)));
        QuantizationMap? map = null;
        if (mapPath is not null)
        {
            try
            {
                map = CheckpointFiles.LoadMap(mapPath, source.Record, source.WeightsPath, out string? stale);
                if (stale is not null) problems.Add($"{mapPath}: {stale}");
            }
            catch (QuantoFormatException e)
            {
                problems.Add(e.Message);
            }
        }
        stdout.WriteLine($"{source.Path}: safetensors, {source.Files.Count} file(s), {source.Tensors.Count} tensors, " +
            $"{TextTable.Bytes(source.DataBytes)} of tensor data");
        foreach (string file in source.Files)
            stdout.WriteLine($"  file {file} ({TextTable.Bytes(new FileInfo(file).Length)})");
        foreach (var (k, v) in source.Metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
            stdout.WriteLine($"  metadata {k} = {v}");
        stdout.WriteLine();
        var rows = source.Tensors.OrderBy(t => t.Name, StringComparer.Ordinal).Select(t => (IReadOnlyList<string>)
        [
            t.Name, SafetensorsDType.NameOf(t.Entry.DType), TextTable.Shape(t.Entry.Shape),
            TextTable.Bytes(t.Entry.ByteLength), QTypeOf(t.Name, map),
        ]).ToList();
        TextTable.Write(stdout, Header, rows, 3);
        WriteTotals(stdout, source.Tensors.Select(t => (t.Entry.DType, t.Entry.ByteLength)));
        stdout.WriteLine();
        WriteMap(stdout, map, mapPath is null ? how : $"{mapPath}: {how}");
        if (verify)
        {
            foreach (SourceTensor t in source.Tensors)
            {
                try
                {
                    using Tensor read = t.Read();
                }
                catch (QuantoFormatException e)
                {
                    problems.Add(e.Message);
                }
            }
            var files = source.Files.Count;
            bool checksums = source.Tensors.Any(t => t.File.HasChecksums);
            stdout.WriteLine(checksums
                ? $"Read every tensor of {files} file(s); Quanto.NET checksums verified."
                : $"Read every tensor of {files} file(s); no checksums stored (not written by Quanto.NET).");
        }
        var entries = source.Tensors.ToDictionary(t => t.Name, t => t.Entry, StringComparer.Ordinal);
        problems.AddRange(QuantizedLayoutCheck.Check(entries, map, source.Path, CheckpointFiles.MapFileFor(baseName)));
        return problems;
    }

    private static List<string> InspectQnt(string path, TextWriter stdout)
    {
        var problems = new List<string>();
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file.");
        using QntPackage package = QntPackage.Load(path); // verifies magic, version and every checksum
        long bytes = package.Tensors.Values.Sum(t => t.Tensor.NumberOfElements * t.Tensor.ElementSize);
        stdout.WriteLine($"{path}: .qnt package v{package.FormatVersion}, {package.Tensors.Count} tensors, " +
            $"{TextTable.Bytes(bytes)} of tensor data ({TextTable.Bytes(new FileInfo(path).Length)} on disk)");
        foreach (var (k, v) in package.Metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
            stdout.WriteLine($"  metadata {k} = {v}");
        stdout.WriteLine();
        var rows = package.Tensors.Values.Select(t => (IReadOnlyList<string>)
        [
            t.Name, SafetensorsDType.NameOf(t.Tensor.dtype), TextTable.Shape(t.Tensor.shape),
            TextTable.Bytes(t.Tensor.NumberOfElements * t.Tensor.ElementSize),
            t.QType is QType q
                ? $"{q.QuantoName()}" + (t.GroupSize is int g ? $" g{g}" : "") +
                  (t.WeightShape is { } s ? $" of {TextTable.Shape(s)}" : "")
                : "",
        ]).ToList();
        TextTable.Write(stdout, Header, rows, 3);
        WriteTotals(stdout, package.Tensors.Values.Select(t =>
            (t.Tensor.dtype, t.Tensor.NumberOfElements * t.Tensor.ElementSize)));
        stdout.WriteLine();
        WriteMap(stdout, package.QuantizationMap, "in the package");
        stdout.WriteLine("Checksums of the header and every tensor verified.");
        var modules = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (module, spec) in package.QuantizationMap)
        {
            if (spec.Weights is null) continue;
            modules.Add(module);
            try
            {
                package.ReadWeight(module, path).Dispose();
            }
            catch (QuantoFormatException e)
            {
                problems.Add(e.Message);
            }
        }
        foreach (QntTensor t in package.Tensors.Values.Where(t => t.QType is not null))
        {
            string module = QuantizedLayoutCheck.ModuleOf(t.Name) ?? t.Name;
            if (!modules.Contains(module))
                problems.Add($"tensor '{t.Name}' is tagged {t.QType?.QuantoName()} but module '{module}' has no " +
                    "quantized weights in the map.");
        }
        return problems;
    }

    private static void WriteTotals(TextWriter stdout, IEnumerable<(ScalarType DType, long Bytes)> tensors)
    {
        var parts = tensors.GroupBy(t => t.DType).OrderByDescending(g => g.Sum(t => t.Bytes))
            .Select(g => $"{SafetensorsDType.NameOf(g.Key)} {TextTable.Bytes(g.Sum(t => t.Bytes))} ({g.Count()})");
        stdout.WriteLine($"By dtype: {string.Join(", ", parts)}");
    }

    private static void WriteMap(TextWriter stdout, QuantizationMap? map, string where)
    {
        if (map is null || map.Count == 0)
        {
            stdout.WriteLine($"Quantization map: none ({where}).");
            return;
        }
        stdout.WriteLine($"Quantization map ({where}): {map.Count} module(s)");
        foreach (var group in map.GroupBy(p => (p.Value.Weights?.QuantoName() ?? "none",
            p.Value.Activations?.QuantoName() ?? "none")))
        {
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  weights {group.Key.Item1}, activations {group.Key.Item2}: {group.Count()} module(s)"));
        }
        foreach (var (module, spec) in map)
        {
            stdout.WriteLine($"  {(module.Length == 0 ? "<root>" : module)}: weights " +
                $"{spec.Weights?.QuantoName() ?? "none"}, activations {spec.Activations?.QuantoName() ?? "none"}");
        }
    }

    private static string QTypeOf(string key, QuantizationMap? map)
    {
        string? module = QuantizedLayoutCheck.ModuleOf(key);
        return module is not null && map is not null && map.TryGet(module, out QuantizationSpec spec) &&
            spec.Weights is QType q
            ? q.QuantoName()
            : "";
    }
}
