using NUnit.Framework;
using static TorchSharp.torch;

namespace Quanto.Tests;

/// <summary>Process settings for libtorch: checked by their effect, not just their return value.</summary>
[TestFixture]
public class TorchEnvironmentTests
{
    [Test]
    public void ReuseFreedMemory_MultiMegabyteTensorsStopFaultingAfterTheFirstCall()
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("glibc-only setting");
        Assert.That(TorchEnvironment.ReuseFreedMemory(), Is.True, "glibc accepted the settings");

        // The demo's CNN shape at batch 64 (a 3.2 MB first activation), every tensor freed at the end of each forward
        // as in a serving loop. The first calls may fault their pages in; later ones must reuse them (without the
        // setting each forward faulted 2,000-2,800 pages on this project's machines).
        using var conv1 = nn.Conv2d(1, 16, 3, padding: 1);
        using var conv2 = nn.Conv2d(16, 32, 3, padding: 1);
        using Tensor x = rand(64, 1, 28, 28);
        for (int i = 0; i < 5; i++) Forward(conv1, conv2, x);
        long before = MinorFaults();
        for (int i = 0; i < 10; i++) Forward(conv1, conv2, x);
        long perCall = (MinorFaults() - before) / 10;
        Assert.That(perCall, Is.LessThan(300), "page faults per forward after warm-up");
    }

    [Test]
    public void ReuseFreedMemory_RejectsABlockSizeBelowGlibcsDefault() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => TorchEnvironment.ReuseFreedMemory(4096));

    private static void Forward(TorchSharp.Modules.Conv2d conv1, TorchSharp.Modules.Conv2d conv2, Tensor x)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor h = nn.functional.max_pool2d(nn.functional.relu(conv1.forward(x)), 2);
        h = nn.functional.max_pool2d(nn.functional.relu(conv2.forward(h)), 2);
        Assert.That(h.shape, Is.EqualTo(new long[] { 64, 32, 7, 7 }));
    }

    /// <summary>Field 10 of /proc/self/stat: minor page faults of this process so far.</summary>
    private static long MinorFaults() =>
        long.Parse(File.ReadAllText("/proc/self/stat").Split(") ")[1].Split(' ')[7]);
}
