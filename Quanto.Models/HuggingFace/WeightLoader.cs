using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto.Models.HuggingFace;

/// <summary>
/// Loads a checkpoint's float tensors into a model built on the meta device. Every key is matched and every shape
/// checked against the file headers before any tensor is read, so a bad checkpoint fails fast with one message
/// listing each missing key, each shape mismatch (file, key, both shapes) and each unexpected key.
/// </summary>
internal static class WeightLoader
{
    /// <summary>Loads <paramref name="checkpoint"/> into <paramref name="model"/>.</summary>
    /// <exception cref="QuantoFormatException">Keys missing, shapes mismatched, or (strict) unexpected keys.
    /// </exception>
    internal static LoadReport Load(nn.Module model, HfCheckpoint checkpoint, CheckpointNaming naming,
        ScalarType dtype, Device device, bool strict)
    {
        var plan = new List<(string ModelKey, string FileKey)>();
        var problems = new List<string>();
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach ((string key, Tensor target) in model.named_parameters())
        {
            if (naming.NotLoaded.Contains(key)) continue;
            string? fileKey = naming.Candidates(key).FirstOrDefault(checkpoint.Contains);
            if (fileKey is null)
            {
                problems.Add($"missing key '{key}' (shape {Shapes.Format(target.shape)})");
                continue;
            }
            SafetensorsEntry entry = checkpoint.Entry(fileKey);
            if (!entry.Shape.SequenceEqual(target.shape))
            {
                problems.Add($"shape mismatch for '{fileKey}' in {Path.GetFileName(checkpoint.FileOf(fileKey))}: the " +
                             $"file holds {Shapes.Format(entry.ShapeArray)}, the model (from config.json) " +
                             $"expects {Shapes.Format(target.shape)}");
                continue;
            }
            if (!IsFloat(entry.DType))
            {
                problems.Add($"'{fileKey}' is {SafetensorsDType.NameOf(entry.DType)}; a float tensor (F32, F16, " +
                             "BF16) is expected");
                continue;
            }
            used.Add(fileKey);
            plan.Add((key, fileKey));
        }
        var ignored = new List<string>();
        var unexpected = new List<string>();
        foreach (string key in checkpoint.Keys.Where(k => !used.Contains(k)))
            (naming.Ignorable(key) ? ignored : unexpected).Add(key);
        if (strict && unexpected.Count > 0)
        {
            problems.Add($"{unexpected.Count} unexpected key(s) the model does not use: " +
                         string.Join(", ", unexpected.Select(k => $"'{k}'")) +
                         " (a config.json that does not describe these weights?)");
        }
        if (problems.Count > 0)
        {
            throw new QuantoFormatException(checkpoint.Source,
                $"does not fit the model: {string.Join("; ", problems)}.");
        }

        Dictionary<string, nn.Module> modules = ParameterSlots.Modules(model);
        using (no_grad())
        {
            foreach ((string modelKey, string fileKey) in plan)
            {
                // A new handle either way: the storage itself when dtype and device already match, else a copy.
                using Tensor raw = checkpoint.Read(fileKey);
                ParameterSlots.Assign(modules, modelKey, raw.to(dtype, device));
            }
        }
        return new LoadReport(checkpoint.Source, dtype, plan.Select(p => p.ModelKey).ToList(), ignored,
            strict ? [] : unexpected);
    }

    private static bool IsFloat(ScalarType dtype) =>
        dtype is ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16;
}
