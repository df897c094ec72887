using Quanto.Cli;
using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto.Tests.Cli;

/// <summary>A synthetic checkpoint on disk and in-process runs of the quanto command.</summary>
internal sealed class CliFixture : IDisposable
{
    /// <summary>Quantizable weights: Linear grouped (row 256: g128), Linear in BF16 with fallback group
    /// (row 320: g64), Linear per channel in F16 (row 64), Conv2d per channel (rows 72 and 9).</summary>
    internal static readonly (string Module, long[] Shape, ScalarType DType)[] Weights =
    [
        ("encoder.fc1", [64, 256], ScalarType.Float32),
        ("encoder.fc2", [32, 320], ScalarType.BFloat16),
        ("head", [10, 64], ScalarType.Float16),
        ("conv", [16, 8, 3, 3], ScalarType.Float32),
        ("stem", [8, 1, 3, 3], ScalarType.Float32), // row of 9: per channel, not a multiple of 8
    ];

    internal CliFixture()
    {
        Folder = Path.Combine(Path.GetTempPath(), "quanto-cli-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Folder);
        var generator = new TorchSharp.torch.Generator(1234);
        foreach (var (module, shape, dtype) in Weights)
        {
            Tensors[module + ".weight"] = randn(shape, generator: generator).mul(0.1).to(dtype);
            Tensors[module + ".bias"] = randn([shape[0]], generator: generator).to(dtype);
        }
        Tensors["norm.weight"] = randn([64], generator: generator);
        Tensors["position_ids"] = arange(16L).reshape(1, 16);
        Input = Path.Combine(Folder, "model.safetensors");
        Safetensors.Save(Input, Tensors, new Dictionary<string, string> { ["origin"] = "test" }, checksums: false);
    }

    /// <summary>The temporary folder (deleted on dispose).</summary>
    internal string Folder { get; }

    /// <summary>The input checkpoint file.</summary>
    internal string Input { get; }

    /// <summary>The tensors written to <see cref="Input"/>.</summary>
    internal Dictionary<string, Tensor> Tensors { get; } = new(StringComparer.Ordinal);

    /// <summary>A path in the fixture's folder.</summary>
    internal string PathOf(string name) => Path.Combine(Folder, name);

    /// <summary>Runs quanto in-process.</summary>
    internal static (int Code, string Out, string Err) Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Same dtype, shape and values.</summary>
    internal static bool Same(Tensor a, Tensor b)
    {
        if (a.dtype != b.dtype || !a.shape.SequenceEqual(b.shape)) return false;
        using Tensor eq = a.eq(b).all();
        return eq.item<bool>();
    }

    public void Dispose()
    {
        foreach (Tensor t in Tensors.Values) t.Dispose();
        Directory.Delete(Folder, true);
    }
}
