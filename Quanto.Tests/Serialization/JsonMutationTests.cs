using System.Text;
using System.Text.RegularExpressions;
using NUnit.Framework;
using Quanto.Serialization;
using Quanto.Tests.TestSupport;
using static Quanto.Tests.Serialization.SerializationTestUtil;
using static TorchSharp.torch;

namespace Quanto.Tests.Serialization;

/// <summary>
/// Seeded mutants of the JSON documents a checkpoint carries (quanto_qmap.json, the shard index, the JSON held in
/// metadata): half random byte changes (as <see cref="MutationTests"/>), half JSON-aware ones (a repeated member, a
/// string or number swapped for an awkward one, invalid UTF-8, deep nesting). These documents carry no checksum, so a
/// mutant may be a valid document meaning something else: each must either load (and what it loaded must survive
/// being written and read back) or throw <see cref="QuantoFormatException"/>, never another exception.
/// </summary>
public partial class JsonMutationTests : TempFolderTests
{
    private const int Variants = 2_000;

    private static readonly string[] Strings =
        [@"\ud800", @"\udfff\ud800", @"\u0000", "", "x", "qint4", "none", "..", "a/b", "\u00e9", new string('s', 300)];

    private static readonly string[] Numbers = ["-1", "0", "1e999", "1.5", "99999999999999999999", "8", "-0", "2e1"];

    [GeneratedRegex("\"(?:[^\"\\\\]|\\\\.)*\"\\s*:\\s*(?:\"(?:[^\"\\\\]|\\\\.)*\"|-?[0-9][0-9.eE+-]*|\\{[^{}]*\\})")]
    private static partial Regex Member();

    [GeneratedRegex("\"(?:[^\"\\\\]|\\\\.)*\"")]
    private static partial Regex StringLiteral();

    [GeneratedRegex("-?[0-9][0-9.eE+-]*")]
    private static partial Regex NumberLiteral();

    private static (byte[], string) Mutate(byte[] valid, Random rng)
    {
        if (rng.Next(2) == 0) return MutationTests.Mutate(valid, rng);
        string text = Encoding.UTF8.GetString(valid);
        switch (rng.Next(5))
        {
            case 0:
            {
                Match[] members = Member().Matches(text).ToArray();
                Match m = members[rng.Next(members.Length)];
                return (Encoding.UTF8.GetBytes(text.Insert(m.Index + m.Length, ", " + m.Value)), $"repeat {m.Value}");
            }
            case 1:
            {
                Match[] strings = StringLiteral().Matches(text).ToArray();
                Match m = strings[rng.Next(strings.Length)];
                string with = "\"" + Strings[rng.Next(Strings.Length)] + "\"";
                return (Encoding.UTF8.GetBytes(text.Remove(m.Index, m.Length).Insert(m.Index, with)),
                    $"{m.Value} := {with}");
            }
            case 2:
            {
                Match[] numbers = NumberLiteral().Matches(text).ToArray();
                if (numbers.Length == 0) goto case 1;
                Match m = numbers[rng.Next(numbers.Length)];
                string with = Numbers[rng.Next(Numbers.Length)];
                return (Encoding.UTF8.GetBytes(text.Remove(m.Index, m.Length).Insert(m.Index, with)),
                    $"{m.Value} := {with}");
            }
            case 3:
            {
                byte[][] bad = [[0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]];
                byte[] insert = bad[rng.Next(bad.Length)];
                int at = rng.Next(valid.Length);
                return ([.. valid[..at], .. insert, .. valid[at..]], $"invalid UTF-8 at {at}");
            }
            default:
            {
                Match[] strings = StringLiteral().Matches(text).ToArray();
                Match m = strings[rng.Next(strings.Length)];
                int depth = 1 + rng.Next(40);
                string nested = new string('[', depth) + new string(']', depth);
                return (Encoding.UTF8.GetBytes(text.Remove(m.Index, m.Length).Insert(m.Index, nested)),
                    $"{m.Value} := {depth} nested arrays");
            }
        }
    }

    [Test]
    public void QuantizationMapMutants()
    {
        var map = new QuantizationMap
        {
            { "model.fc1", new QuantizationSpec(QType.QInt4, null) },
            { "model.fc2", new QuantizationSpec(QType.QInt8, QType.QFloat8E4M3Fn) },
            { "lm_head", new QuantizationSpec(null, QType.QInt8) },
        };
        byte[] valid = Encoding.UTF8.GetBytes(map.ToJson());
        MutationTests.Run(valid, bytes =>
        {
            QuantizationMap parsed = QuantizationMap.Parse(bytes, "mutant_qmap.json");
            return QuantizationMap.Parse(parsed.ToJson()).SequenceEqual(parsed);
        }, expectDetection: false, variants: Variants, mutate: Mutate);
    }

    [Test]
    public void ShardIndexMutants()
    {
        using (var scope = NewDisposeScope())
        {
            var tensors = new Dictionary<string, Tensor>
            {
                ["a.weight"] = tensor(new[] { 1f, 2f }), ["a.bias"] = tensor(new[] { 3f, 4f }),
                ["b"] = tensor(new[] { 5f, 6f }),
            };
            ShardedSafetensors.Save(Folder, tensors, maxShardBytes: 8);
        }
        string index = Path.Combine(Folder, ShardedSafetensors.IndexFileName);
        byte[] valid = File.ReadAllBytes(index);
        using StateDict reference = ShardedSafetensors.Load(index);
        MutationTests.Run(valid, bytes =>
        {
            // Any index that loads names the shards' keys exactly (the shards are unchanged), so it loads them all.
            File.WriteAllBytes(index, bytes);
            using StateDict loaded = ShardedSafetensors.Load(index);
            return loaded.Tensors.Keys.Order().SequenceEqual(reference.Tensors.Keys.Order()) &&
                reference.Tensors.Keys.All(k => Identical(loaded[k], reference[k]));
        }, expectDetection: false, variants: Variants, mutate: Mutate);
    }

    [Test]
    public void GroupSizeMetadataMutants()
    {
        const string valid = """{"encoder.fc1": 64, "encoder.fc2": 32, "head": 128}""";
        using var dict = new StateDict("mutant.safetensors");
        MutationTests.Run(Encoding.UTF8.GetBytes(valid), bytes =>
        {
            // Metadata values are strings decoded from a UTF-8 header: invalid bytes arrive as U+FFFD.
            dict.Metadata[QuantizedModel.GroupSizesMetadataKey] = Encoding.UTF8.GetString(bytes);
            return QuantizedModel.StoredGroupSizes(dict).Values.All(g => g > 0 && g % 8 == 0);
        }, expectDetection: false, variants: Variants, mutate: Mutate);
    }

    [Test]
    public void ChecksumRecordMutants()
    {
        string record = SafetensorsChecksums.Format(0x0123456789abcdef,
            [KeyValuePair.Create("fc.weight", 0xfedcba9876543210UL), KeyValuePair.Create("fc.bias", 42UL)]);
        byte[] valid = Encoding.UTF8.GetBytes(record[SafetensorsChecksums.Marker.Length..]);
        MutationTests.Run(valid, bytes =>
        {
            var parsed = SafetensorsChecksums.Parse(SafetensorsChecksums.Marker + Encoding.UTF8.GetString(bytes), "r");
            return parsed.ContainsKey("__metadata__");
        }, expectDetection: false, variants: Variants, mutate: Mutate);
    }
}
