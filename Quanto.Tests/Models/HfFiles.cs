using System.Text.Json.Nodes;
using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

/// <summary>Writes tiny checkpoints in Hugging Face's folder layout (config.json + model.safetensors, or shards +
/// index) from random tensors named as transformers names them.</summary>
internal static class HfFiles
{
    /// <summary>Writes config.json and the tensors (in <paramref name="dtype"/>; sharded when
    /// <paramref name="shardBytes"/> is given).</summary>
    internal static void Write(string folder, JsonObject config, IReadOnlyDictionary<string, Tensor> tensors,
        ScalarType dtype = ScalarType.Float32, long? shardBytes = null, string prefix = "")
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        var converted = tensors.Select(p => KeyValuePair.Create(prefix + p.Key, p.Value.to(dtype))).ToList();
        if (shardBytes is long max) ShardedSafetensors.Save(folder, converted, max);
        else Safetensors.Save(Path.Combine(folder, "model.safetensors"), converted, checksums: false);
        foreach (var (_, t) in converted) t.Dispose();
    }

    /// <summary>A random tensor with a fixed seed per call site, scaled like trained weights.</summary>
    internal static Tensor Random(Generator generator, double scale, params long[] shape) =>
        randn(shape, generator: generator).mul_(scale);

    /// <summary>Flips bytes at the end of a file away: the file is truncated by <paramref name="bytes"/>.</summary>
    internal static void Truncate(string path, int bytes)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.SetLength(stream.Length - bytes);
    }
}
