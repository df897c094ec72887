using System.Diagnostics;
using NUnit.Framework;
using Quanto.Quantization;
using Quanto.Serialization;
using static Quanto.Tests.Serialization.SerializationTestUtil;
using static TorchSharp.torch;

namespace Quanto.Tests.Serialization;

/// <summary>
/// Seeded random corruption of valid files (byte changes, bit flips, truncation, extension, short bursts): each
/// variant must either load exactly the original content or throw <see cref="QuantoFormatException"/>.
/// </summary>
public class MutationTests
{
    private const int Variants = 10_000;

    [Test]
    public void CorruptedSafetensorsLoadIdenticallyOrThrowTheFormatException()
    {
        byte[] valid;
        using (var scope = NewDisposeScope())
        {
            using var stream = new MemoryStream();
            Safetensors.Write(stream,
            [
                KeyValuePair.Create("fc.weight._data", tensor(new sbyte[] { 1, -2, 3, 4, 5, -6 }, [2, 3])),
                KeyValuePair.Create("fc.weight._scale", tensor(new[] { 0.5f, 0.25f }, [2, 1])),
                KeyValuePair.Create("fc.bias", tensor(new[] { 1f, 2f }).to(ScalarType.Float16)),
                KeyValuePair.Create("fc.input_scale", tensor(1f)),
                KeyValuePair.Create("mask", tensor(new[] { true, false, true })),
            ], new Dictionary<string, string> { ["author"] = "quanto" });
            valid = stream.ToArray();
        }
        using StateDict reference = Load(valid);
        Run(valid, bytes =>
        {
            using StateDict loaded = Load(bytes);
            return Same(reference, loaded);
        });

        static StateDict Load(byte[] bytes)
        {
            using var stream = new MemoryStream(bytes, writable: false);
            return Safetensors.Load(stream, "mutant.safetensors");
        }
    }

    [Test]
    public void CorruptedForeignSafetensorsWithoutChecksumsLoadOrThrowTheFormatException()
    {
        // Files from other writers carry no checksum, so a changed data byte loads as changed data; the parser must
        // still never fail any other way.
        byte[] valid;
        using (Tensor a = arange(12, dtype: ScalarType.Float32).reshape(3, 4))
        using (Tensor b = tensor(new byte[] { 0xF0, 0x0F, 0xE7 }))
        using (var stream = new MemoryStream())
        {
            Safetensors.Write(stream, [KeyValuePair.Create("a", a), KeyValuePair.Create("b", b)],
                checksums: false);
            valid = stream.ToArray();
        }
        Run(valid, bytes =>
        {
            using var stream = new MemoryStream(bytes, writable: false);
            using StateDict loaded = Safetensors.Load(stream, "foreign.safetensors");
            return true;
        }, expectDetection: false);
    }

    [Test]
    public void CorruptedQntPackagesLoadIdenticallyOrThrowTheFormatException()
    {
        byte[] valid;
        using (Tensor w = arange(0, 64, dtype: ScalarType.Float32).reshape(2, 32).div(10))
        using (var package = new QntPackage())
        {
            package.Metadata["author"] = "quanto";
            package.QuantizationMap.Add("fc", new QuantizationSpec(QType.QInt4, QType.QInt8));
            package.AddWeight("fc", WeightQuantizer.Quantize(w, QType.QInt4));
            package.Add("fc.bias", tensor(new[] { 1f, 2f }));
            using var stream = new MemoryStream();
            package.Write(stream);
            valid = stream.ToArray();
        }
        using QntPackage reference = QntPackage.Read(valid);
        Run(valid, bytes =>
        {
            using QntPackage loaded = QntPackage.Read(bytes, "mutant.qnt");
            return Same(reference, loaded);
        });
    }

    /// <summary>Loads <paramref name="variants"/> mutants of <paramref name="valid"/>: each must load identically
    /// (the function returns true) or throw <see cref="QuantoFormatException"/>.</summary>
    internal static void Run(byte[] valid, Func<byte[], bool> loadsIdentically, bool expectDetection = true,
        int variants = Variants, Func<byte[], Random, (byte[], string)>? mutate = null)
    {
        var rng = new Random(20261124);
        int loaded = 0, rejected = 0;
        var wrong = new List<string>();
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < variants; i++)
        {
            (byte[] bytes, string how) = (mutate ?? Mutate)(valid, rng);
            try
            {
                if (loadsIdentically(bytes)) loaded++;
                else wrong.Add($"{how}: loaded different data");
            }
            catch (QuantoFormatException)
            {
                rejected++;
            }
            catch (Exception e)
            {
                wrong.Add($"{how}: {e.GetType().Name}: {e.Message}");
            }
        }
        TestContext.Out.WriteLine($"{variants} variants of {valid.Length} bytes: {loaded} loaded identically, " +
            $"{rejected} rejected, {wrong.Count} wrong, {watch.Elapsed.TotalSeconds:F1} s");
        Assert.That(wrong, Is.Empty, string.Join("\n", wrong.Take(10)));
        if (expectDetection) Assert.That(rejected, Is.GreaterThan(variants / 2), "most corruptions must be detected");
    }

    internal static (byte[], string) Mutate(byte[] valid, Random rng)
    {
        byte[] bytes = (byte[])valid.Clone();
        switch (rng.Next(5))
        {
            case 0:
            {
                int at = rng.Next(bytes.Length);
                byte value = (byte)rng.Next(256);
                bytes[at] = value;
                return (bytes, $"byte {at} := 0x{value:X2}");
            }
            case 1:
            {
                int at = rng.Next(bytes.Length), bit = rng.Next(8);
                bytes[at] ^= (byte)(1 << bit);
                return (bytes, $"bit {bit} of byte {at} flipped");
            }
            case 2:
            {
                int length = rng.Next(bytes.Length);
                return (bytes[..length], $"truncated to {length}");
            }
            case 3:
            {
                byte[] extra = new byte[1 + rng.Next(16)];
                rng.NextBytes(extra);
                return ([.. bytes, .. extra], $"extended by {extra.Length}");
            }
            default:
            {
                int length = 2 + rng.Next(3), at = rng.Next(bytes.Length - length);
                rng.NextBytes(bytes.AsSpan(at, length));
                return (bytes, $"burst of {length} at {at}");
            }
        }
    }

    private static bool Same(StateDict a, StateDict b) =>
        a.Tensors.Keys.SequenceEqual(b.Tensors.Keys) &&
        a.Tensors.Keys.All(k => Identical(a[k], b[k])) &&
        a.Metadata.OrderBy(p => p.Key).SequenceEqual(b.Metadata.OrderBy(p => p.Key));

    private static bool Same(QntPackage a, QntPackage b) =>
        a.Tensors.Keys.SequenceEqual(b.Tensors.Keys) &&
        a.Tensors.Keys.All(k => SameEntry(a.Tensors[k], b.Tensors[k])) &&
        a.Metadata.OrderBy(p => p.Key).SequenceEqual(b.Metadata.OrderBy(p => p.Key)) &&
        a.QuantizationMap.SequenceEqual(b.QuantizationMap) &&
        a.FormatVersion.Major == b.FormatVersion.Major;

    private static bool SameEntry(QntTensor a, QntTensor b) =>
        a.Name == b.Name && a.QType == b.QType && a.Axis == b.Axis && a.GroupSize == b.GroupSize &&
        (a.WeightShape ?? []).SequenceEqual(b.WeightShape ?? []) &&
        (a.WeightShape is null) == (b.WeightShape is null) &&
        Identical(a.Tensor, b.Tensor);
}
