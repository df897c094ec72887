using Quanto.Serialization;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Serialization;

/// <summary>
/// What the kill test's child process does (<c>dotnet Quanto.Tests.dll save-loop FOLDER a|b</c>): saves two different
/// quantized checkpoints into one folder in turn, forever — A (qint8: several shards, the index and the map) and B
/// (qint4: one file and the map) — printing "ready" before the first save and "saved" after each.
/// </summary>
internal static class SaveLoop
{
    /// <summary>Shards small enough that A needs several.</summary>
    internal const long ShardBytes = 48 << 10;

    /// <summary>The checkpoint file inside the folder.</summary>
    internal const string FileName = "model.safetensors";

    /// <summary>Checkpoint A (even) or B (odd): a seeded Mlp quantized to qint8 or qint4, frozen.</summary>
    internal static Module<Tensor, Tensor> Build(bool b)
    {
        Module<Tensor, Tensor> model = Seeded.Create<Module<Tensor, Tensor>>(() => new Mlp(256, 192, 64), b ? 2 : 1);
        Quantizer.Quantize(model, b ? QType.QInt4 : QType.QInt8);
        Quantizer.Freeze(model);
        return model;
    }

    /// <summary>Saves one checkpoint the way the loop does.</summary>
    internal static void Save(Module<Tensor, Tensor> model, string folder) =>
        QuantizedModel.Save(model, Path.Combine(folder, FileName), ShardBytes);

    /// <summary>The child's loop, starting with A or B; it ends only when the process is killed.</summary>
    internal static int Run(string folder, bool startWithB)
    {
        using Module<Tensor, Tensor> a = Build(b: false), b = Build(b: true);
        Console.Out.WriteLine("ready");
        Console.Out.Flush();
        for (long i = startWithB ? 1 : 0; ; i++)
        {
            Save(i % 2 == 0 ? a : b, folder);
            Console.Out.WriteLine("saved");
            Console.Out.Flush();
        }
    }
}

/// <summary>The test assembly's entry point, for the child processes some tests start (dotnet test does not use it).
/// </summary>
internal static class TestProgram
{
    internal static int Main(string[] args)
    {
        if (args is ["save-loop", string folder, "a" or "b"]) return SaveLoop.Run(folder, args[2] == "b");
        Console.Error.WriteLine(
            "Quanto.Tests runs under dotnet test; 'save-loop FOLDER a|b' is the kill test's child.");
        return 2;
    }
}
