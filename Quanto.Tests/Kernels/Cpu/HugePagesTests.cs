using NUnit.Framework;
using Quanto.Kernels;
using Quanto.Kernels.Cpu;
using Quanto.Tensors;
using static Quanto.Tests.Kernels.Cpu.CpuKernelTestData;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Cpu;

/// <summary>Prepared weights of 2 MiB and more live on huge pages; the kernels must not care.</summary>
[TestFixture]
public unsafe class HugePagesTests
{
    [Test]
    public void Allocate_AlignsLargeBlocksToHugePagesAndSmallOnesToCacheLines()
    {
        void* large = HugePages.Allocate(3L << 20);
        void* small = HugePages.Allocate(1000);
        try
        {
            Assert.That((long)large % (2 << 20), Is.Zero, "2 MiB aligned");
            Assert.That((long)small % 64, Is.Zero, "64-byte aligned");
            new Span<byte>(large, 3 << 20).Fill(7); // every page writable
            Assert.That(((byte*)large)[(3 << 20) - 1], Is.EqualTo(7));
            string thp = File.Exists(ThpSetting) ? File.ReadAllText(ThpSetting) : "[never]";
            if (!thp.Contains("[never]", StringComparison.Ordinal))
            {
                // The advice reached the kernel: the mapping is eligible for huge pages. Whether one is resident
                // depends on free contiguous memory at that moment (under memory pressure the kernel falls back to
                // 4 KiB pages), so that part is only checked when the kernel reports huge pages being handed out.
                Assert.That(SmapsField((long)large, "THPeligible:"), Is.EqualTo(1), $"THP setting: {thp.Trim()}");
                if (SmapsField((long)large, "AnonHugePages:") == 0 && SystemAnonHugePagesKb() == 0)
                    Assert.Warn("The kernel gave no huge page to any process just now (memory fragmented).");
                else
                    Assert.That(SmapsField((long)large, "AnonHugePages:"), Is.GreaterThanOrEqualTo(2048));
            }
        }
        finally
        {
            HugePages.Free(large);
            HugePages.Free(small);
        }
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(6)]
    public void Linear_OnHugePages_EqualsPlainPagesAndTorch(int m)
    {
        // 1024 x 4096 int4: 2 MiB of codes plus scales and shifts, so the prepared weight takes the huge-page path;
        // GEMV (m = 1, 2) prefetches one row pair ahead up to the end of the last chunk.
        using var scope = NewDisposeScope();
        var format = new CpuWeightCase(QType.QInt4);
        using QuantizedWeight weight = Weight(format, 1024, 4096, seed: 11);
        Tensor x = Input(m, 4096, seed: 12);
        float[] huge = Run(weight, x, hugePages: true);
        float[] plain = Run(weight, x, hugePages: false);

        Assert.That(huge, Is.EqualTo(plain), "bit-identical on either kind of page");
        Tensor reference = nn.functional.linear(x, weight.Dequantize());
        Assert.That(RelativeError(huge, ToDoubles(reference)), Is.LessThanOrEqualTo(1e-5));
    }

    private const string ThpSetting = "/sys/kernel/mm/transparent_hugepage/enabled";

    /// <summary>AnonHugePages (KiB) in use system-wide (/proc/meminfo).</summary>
    private static long SystemAnonHugePagesKb() =>
        File.ReadLines("/proc/meminfo").Where(l => l.StartsWith("AnonHugePages:", StringComparison.Ordinal))
            .Select(l => long.Parse(l["AnonHugePages:".Length..].Replace("kB", "").Trim())).FirstOrDefault();

    /// <summary>A numeric field ("AnonHugePages:" in KiB, "THPeligible:") of the mapping in /proc/self/smaps that
    /// contains <paramref name="address"/>.</summary>
    private static long SmapsField(long address, string field)
    {
        bool inside = false;
        foreach (string line in File.ReadLines("/proc/self/smaps"))
        {
            int dash = line.IndexOf('-', StringComparison.Ordinal);
            int space = line.IndexOf(' ', StringComparison.Ordinal);
            if (dash > 0 && space > dash && long.TryParse(line.AsSpan(0, dash),
                    System.Globalization.NumberStyles.HexNumber, null, out long start))
            {
                long end = long.Parse(line.AsSpan(dash + 1, space - dash - 1), System.Globalization.NumberStyles.HexNumber);
                inside = start <= address && address < end;
            }
            else if (inside && line.StartsWith(field, StringComparison.Ordinal))
            {
                return long.Parse(line[field.Length..].Replace("kB", "").Trim());
            }
        }
        return 0;
    }

    private static float[] Run(QuantizedWeight weight, Tensor x, bool hugePages)
    {
        bool before = HugePages.Enabled;
        HugePages.Enabled = hugePages;
        try
        {
            using PreparedWeight prepared = CpuKernels.Instance.Prepare(weight);
            using Tensor y = CpuKernels.Instance.Linear(x, prepared, null);
            return y.data<float>().ToArray();
        }
        finally
        {
            HugePages.Enabled = before;
        }
    }
}
