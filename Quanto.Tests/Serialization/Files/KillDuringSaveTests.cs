using System.Diagnostics;
using NUnit.Framework;
using Quanto.Serialization;
using Quanto.Tests.TestSupport;
using static Quanto.Tests.Serialization.SerializationTestUtil;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Serialization;

/// <summary>
/// kill -9 during saves (issue 19): a child process saves checkpoints A (several shards, the index and the map) and B
/// (one file and the map) into one folder in turn, each replacing the other's files, and is killed at random moments,
/// at least 20 times. After every kill the
/// folder loads as exactly A or exactly B (every tensor and the map), and once everything is loaded no temporary file
/// of ours is left. The next child starts while the previous one's folder is checked, so loads also meet saves in
/// progress.
/// </summary>
public class KillDuringSaveTests : TempFolderTests
{
    private const int Kills = 20;

    [Test]
    public void AKilledSaveLeavesTheOldCheckpointOrTheNewOne()
    {
        var expected = new[] { Expected(b: false), Expected(b: true) };
        Assert.That(expected[0].Map, Is.Not.EqualTo(expected[1].Map), "A and B differ");
        var rng = new Random(20261201);
        var clock = Stopwatch.StartNew();
        int kills = 0;
        var seen = new int[2];
        Process child = Start(startWithB: false);
        while (kills < Kills)
        {
            // Kill at a random moment of the child's second save or later (the first one completes, so A and B both
            // end up on disk: children start with each in turn).
            if (child.StandardOutput.ReadLine() != "saved") Assert.Fail(child.StandardError.ReadToEnd());
            Thread.Sleep(rng.Next(0, 150));
            child.Kill(entireProcessTree: true);
            child.WaitForExit();
            child.Dispose();
            kills++;
            child = Start(startWithB: kills % 2 == 1);
            if (File.Exists(Path.Combine(Folder, ShardedSafetensors.IndexFileName)) ||
                File.Exists(Path.Combine(Folder, SaveLoop.FileName)))
            {
                seen[Check(expected)]++;
            }
        }
        child.Kill(entireProcessTree: true);
        child.WaitForExit();
        child.Dispose();
        seen[Check(expected)]++;
        string[] left = Directory.GetFiles(Folder).Select(Path.GetFileName).OfType<string>()
            .Where(n => n.StartsWith('.') && n != FolderLockName).ToArray();
        Assert.That(left, Is.Empty, "no temporary file or journal is left once the folder has been loaded");
        TestContext.Out.WriteLine($"{kills} kills in {clock.Elapsed.TotalSeconds:F1} s; loaded A {seen[0]} times, " +
            $"B {seen[1]} times");
        Assert.That(seen[0] > 0 && seen[1] > 0, Is.True, "kills left A and B");
    }

    private const string FolderLockName = ".quanto.lock";

    /// <summary>What checkpoint A or B holds: every tensor's bytes, and the map.</summary>
    private sealed record Checkpoint(SortedDictionary<string, byte[]> Tensors, string Map);

    private Checkpoint Expected(bool b)
    {
        string folder = Path.Combine(Folder, b ? "reference-b" : "reference-a");
        Directory.CreateDirectory(folder);
        using (Module<Tensor, Tensor> model = SaveLoop.Build(b)) SaveLoop.Save(model, folder);
        using QuantizedCheckpoint checkpoint = QuantizedCheckpoint.Load(Path.Combine(folder, SaveLoop.FileName));
        // A (qint8) takes several shards and the index, B (qint4) one file: each save also removes the other's form.
        Assert.That(Directory.GetFiles(folder, "model-*.safetensors"), b ? Is.Empty : Has.Length.GreaterThan(1));
        return Read(checkpoint);
    }

    private static Checkpoint Read(QuantizedCheckpoint checkpoint)
    {
        var tensors = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        foreach ((string key, Tensor t) in checkpoint.StateDict) tensors[key] = [(byte)t.dtype, .. Bytes(t)];
        return new Checkpoint(tensors, checkpoint.QuantizationMap.ToJson());
    }

    /// <summary>Loads the folder; returns 0 for A, 1 for B, and fails for anything else.</summary>
    private int Check(Checkpoint[] expected)
    {
        Checkpoint loaded;
        using (QuantizedCheckpoint checkpoint = QuantizedCheckpoint.Load(Folder)) loaded = Read(checkpoint);
        for (int i = 0; i < 2; i++)
        {
            if (loaded.Map == expected[i].Map && loaded.Tensors.Keys.SequenceEqual(expected[i].Tensors.Keys) &&
                loaded.Tensors.All(p => p.Value.AsSpan().SequenceEqual(expected[i].Tensors[p.Key])))
            {
                return i;
            }
        }
        Assert.Fail($"the folder holds neither A nor B: map {loaded.Map}, " +
            $"keys {string.Join(", ", loaded.Tensors.Keys)}");
        return -1;
    }

    /// <summary>Starts the child and waits until its save loop begins.</summary>
    private Process Start(bool startWithB)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(typeof(SaveLoop).Assembly.Location);
        start.ArgumentList.Add("save-loop");
        start.ArgumentList.Add(Folder);
        start.ArgumentList.Add(startWithB ? "b" : "a");
        Process child = Process.Start(start)!;
        string? line = child.StandardOutput.ReadLine();
        if (line != "ready")
            Assert.Fail($"the child did not start: {line} {child.StandardError.ReadToEnd()}");
        return child;
    }
}
