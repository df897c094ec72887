using System.Diagnostics;
using System.Text;
using NUnit.Framework;
using Quanto.Serialization;
using Quanto.Tests.TestSupport;
using static Quanto.Tests.Serialization.SerializationTestUtil;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Serialization;

/// <summary>
/// A large hostile header (issue 19: 700,000 one-byte tensors cost 7.6 s and 980 MB before the load noticed the model's
/// keys were missing): the header is parsed in one pass into one small entry per tensor, and no tensor is read before
/// the model's keys are checked, so the work and memory stay a small multiple of the header's size. The bounds are
/// loose on purpose (a shared machine); the old path exceeded the memory bound several times over.
/// </summary>
public class HostileHeaderTests : TempFolderTests
{
    private const int Tensors = 200_000;

    [Test]
    public void AHugeHeaderIsRejectedForAMissingKeyAtACostProportionalToItsSize()
    {
        var header = new StringBuilder("{");
        for (int i = 0; i < Tensors; i++)
        {
            header.Append(System.Globalization.CultureInfo.InvariantCulture,
                $"\"t{i:D6}\":{{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[{i},{i + 1}]}},");
        }
        header[^1] = '}';
        byte[] file = SafetensorsBytes(header.ToString(), new byte[Tensors]);
        long headerBytes = file.Length - Tensors;
        string path = Path.Combine(Folder, "model.safetensors");
        File.WriteAllBytes(path, file);
        using Module<Tensor, Tensor> model = Seeded.Create<Module<Tensor, Tensor>>(() => new Mlp(16, 8, 4), 1);
        Quantizer.Quantize(model, QType.QInt8);
        Quantizer.Freeze(model);
        new QuantizationMap
        {
            { "fc1", new QuantizationSpec(QType.QInt8, null) }, { "fc2", new QuantizationSpec(QType.QInt8, null) },
        }.Save(Path.Combine(Folder, QuantizationMap.FileName));

        GC.Collect();
        long peakBefore = ResetPeakResidentBytes();
        long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<QuantoFormatException>(() => QuantizedModel.Load(model, path))!;
        clock.Stop();
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        long peak = PeakResidentBytes() - peakBefore;

        Assert.That(e.Problem, Does.StartWith("missing key 'fc1.weight._data'"));
        TestContext.Out.WriteLine($"header {headerBytes / 1e6:F1} MB: {clock.Elapsed.TotalSeconds:F2} s, " +
            $"{allocated / 1e6:F0} MB allocated, peak resident +{peak / 1e6:F0} MB");
        Assert.That(allocated, Is.LessThan(8 * headerBytes), "managed memory a small multiple of the header");
        if (peak >= 0) Assert.That(peak, Is.LessThan(12 * headerBytes), "resident memory: no tensor was read");
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), "a hang guard, not a benchmark");
    }

    /// <summary>Resets Linux's peak resident set (VmHWM) to the current one; returns it (-1 elsewhere).</summary>
    private static long ResetPeakResidentBytes()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return long.MaxValue; // peak - MaxValue < 0: the resident bound is skipped
        }
        return PeakResidentBytes();
    }

    /// <summary>VmHWM from /proc/self/status, in bytes (0 where there is none).</summary>
    private static long PeakResidentBytes()
    {
        if (!File.Exists("/proc/self/status")) return 0;
        string? line = File.ReadLines("/proc/self/status")
            .FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1],
            System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }
}
