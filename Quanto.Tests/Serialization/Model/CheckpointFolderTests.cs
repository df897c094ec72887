using NUnit.Framework;
using Quanto.Serialization;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Serialization;

/// <summary>
/// Several checkpoints in one folder (issue 13 item 6): each keeps its own quantization map, readers say which map
/// they used, unknown extensions are refused, and a map from another save is caught (issue 19's set records).
/// </summary>
public class CheckpointFolderTests : TempFolderTests
{
    private static Module<Tensor, Tensor> Quantized(QType qtype, long seed)
    {
        Module<Tensor, Tensor> model = Seeded.Create<Module<Tensor, Tensor>>(() => new Mlp(32, 16, 4), seed);
        Quantizer.Quantize(model, qtype);
        Quantizer.Freeze(model);
        return model;
    }

    private static Module<Tensor, Tensor> Fresh() => Seeded.Create<Module<Tensor, Tensor>>(() => new Mlp(32, 16, 4), 9);

    private string PathOf(string name) => Path.Combine(Folder, name);

    [Test]
    public void TwoSavesIntoOneFolderKeepTheirOwnMaps()
    {
        using Module<Tensor, Tensor> a = Quantized(QType.QInt4, 1), b = Quantized(QType.QInt8, 2);
        a.SaveQuantized(PathOf("a.safetensors"));
        b.SaveQuantized(PathOf("b.safetensors"));
        Assert.That(File.Exists(PathOf("a.quanto_qmap.json")) && File.Exists(PathOf("b.quanto_qmap.json")), Is.True);
        Assert.That(File.Exists(PathOf(QuantizationMap.FileName)), Is.False, "only model.safetensors gets that name");
        foreach ((string name, Module<Tensor, Tensor> original) in new[] { ("a", a), ("b", b) })
        {
            using Module<Tensor, Tensor> fresh = Fresh();
            fresh.LoadQuantized(PathOf(name + ".safetensors"));
            Assert.That(ModelCompare.Snapshot(fresh), Is.EqualTo(ModelCompare.Snapshot(original)), name);
        }
        Assert.That(QuantizationMap.FileNameFor(PathOf("a.safetensors")), Is.EqualTo("a.quanto_qmap.json"));
        Assert.That(QuantizationMap.FileNameFor(PathOf("model.safetensors")), Is.EqualTo("quanto_qmap.json"));
        Assert.That(QuantizationMap.FileNameFor("model.safetensors.index.json"), Is.EqualTo("quanto_qmap.json"));
    }

    [Test]
    public void ModelSafetensorsKeepsOptimumQuantosFolderLayout()
    {
        using Module<Tensor, Tensor> a = Quantized(QType.QInt4, 1);
        a.SaveQuantized(PathOf("model.safetensors"));
        Assert.That(QuantizationMap.Load(PathOf(QuantizationMap.FileName))["fc1"].Weights, Is.EqualTo(QType.QInt4));
        using QuantizedCheckpoint checkpoint = QuantizedCheckpoint.Load(Folder);
        Assert.That(checkpoint.MapPath, Is.EqualTo(PathOf(QuantizationMap.FileName)));
        Assert.That(checkpoint.MapOrigin, Is.EqualTo("recorded by the weights"));
    }

    [Test]
    public void ReadersSayWhichMapTheyUsed()
    {
        using Module<Tensor, Tensor> a = Quantized(QType.QInt4, 1);
        a.SaveQuantized(PathOf("a.safetensors"));
        // As earlier versions (and other tools) wrote it: no record in the weights, the folder's quanto_qmap.json.
        using (StateDict dict = Safetensors.Load(PathOf("a.safetensors")))
        {
            dict.Metadata.Remove("quanto_checkpoint");
            Safetensors.Save(PathOf("old.safetensors"), dict);
        }
        File.Move(PathOf("a.quanto_qmap.json"), PathOf(QuantizationMap.FileName));
        using (QuantizedCheckpoint old = QuantizedCheckpoint.Load(PathOf("old.safetensors")))
        {
            Assert.That(old.MapPath, Is.EqualTo(PathOf(QuantizationMap.FileName)));
            Assert.That(old.MapOrigin, Is.EqualTo("the folder's quanto_qmap.json"));
        }
        // A model quantized otherwise: the error names the map, not just the weights.
        using Module<Tensor, Tensor> int8 = Quantized(QType.QInt8, 3);
        var e = Assert.Throws<QuantoFormatException>(() => int8.LoadQuantized(PathOf("old.safetensors")))!;
        Assert.That(e.Message, Does.Contain($"the quantization map {PathOf(QuantizationMap.FileName)} quantizes it"));
    }

    [Test]
    public void SavingModelNextToAnotherCheckpointsMapIsRefused()
    {
        // The folder of an earlier version's save of a.safetensors: its map is quanto_qmap.json.
        using Module<Tensor, Tensor> a = Quantized(QType.QInt4, 1), b = Quantized(QType.QInt8, 2);
        a.SaveQuantized(PathOf("a.safetensors"));
        File.Move(PathOf("a.quanto_qmap.json"), PathOf(QuantizationMap.FileName));
        string before = File.ReadAllText(PathOf(QuantizationMap.FileName));
        var e = Assert.Throws<IOException>(() => b.SaveQuantized(PathOf("model.safetensors")))!;
        Assert.That(e.Message, Does.Contain("belongs to another checkpoint").And.Contain("a.safetensors"));
        Assert.That(File.ReadAllText(PathOf(QuantizationMap.FileName)), Is.EqualTo(before));
        Assert.That(File.Exists(PathOf("model.safetensors")), Is.False);
    }

    [Test]
    public void UnknownExtensionsAreRefused()
    {
        using Module<Tensor, Tensor> a = Quantized(QType.QInt4, 1);
        var save = Assert.Throws<ArgumentException>(() => a.SaveQuantized(PathOf("mlp.bin")))!;
        Assert.That(save.Message, Does.Contain("unknown checkpoint extension '.bin'").And.Contain(".safetensors"));
        Assert.That(Directory.GetFiles(Folder), Is.Empty);
        File.WriteAllBytes(PathOf("mlp.bin"), [1, 2, 3]);
        using Module<Tensor, Tensor> fresh = Fresh();
        Assert.Throws<ArgumentException>(() => fresh.LoadQuantized(PathOf("mlp.bin")));
        Assert.Throws<ArgumentException>(() => QuantizedModel.Load(a, PathOf("mlp.bin")));
    }

    [Test]
    public void AMapFromAnotherSaveIsRefused()
    {
        using Module<Tensor, Tensor> a = Quantized(QType.QInt4, 1), b = Quantized(QType.QInt8, 2);
        a.SaveQuantized(PathOf("a.safetensors"));
        b.SaveQuantized(PathOf("b.safetensors"));
        File.Copy(PathOf("b.quanto_qmap.json"), PathOf("a.quanto_qmap.json"), overwrite: true);
        using Module<Tensor, Tensor> fresh = Fresh();
        var e = Assert.Throws<QuantoFormatException>(() => fresh.LoadQuantized(PathOf("a.safetensors")))!;
        Assert.That(e.Message, Does.Contain("a.quanto_qmap.json is not the map a.safetensors was saved with"));
    }

    [Test]
    public void AShardFromAnotherSaveIsRefused()
    {
        using Module<Tensor, Tensor> a = Quantized(QType.QInt8, 1), b = Quantized(QType.QInt8, 2);
        string other = PathOf("other");
        Directory.CreateDirectory(other);
        QuantizedModel.Save(a, PathOf("model.safetensors"), maxShardBytes: 256);
        QuantizedModel.Save(b, Path.Combine(other, "model.safetensors"), maxShardBytes: 256);
        string[] shards = Directory.GetFiles(Folder, "model-*.safetensors").Order().ToArray();
        Assert.That(shards, Has.Length.GreaterThan(1));
        // What a kill between two renames of an older version left: shard 2 of the next save with shard 1 of this one.
        File.Copy(Path.Combine(other, Path.GetFileName(shards[1])), shards[1], overwrite: true);
        var e = Assert.Throws<QuantoFormatException>(() => QuantizedCheckpoint.Load(Folder))!;
        Assert.That(e.Message, Does.Contain($"shard '{Path.GetFileName(shards[1])}' is from save"));
        Assert.Throws<QuantoFormatException>(() => ShardedSafetensors.Load(Folder));
    }

    [Test]
    public void AShardedSaveReplacesTheSingleFileAndStaleShards()
    {
        using Module<Tensor, Tensor> a = Quantized(QType.QInt8, 1);
        a.SaveQuantized(PathOf("model.safetensors"));
        QuantizedModel.Save(a, PathOf("model.safetensors"), maxShardBytes: 128);
        int many = Directory.GetFiles(Folder, "model-*.safetensors").Length;
        Assert.That(File.Exists(PathOf("model.safetensors")), Is.False, "the single file of the previous save");
        QuantizedModel.Save(a, PathOf("model.safetensors"), maxShardBytes: 1024);
        string[] shards = Directory.GetFiles(Folder, "model-*.safetensors");
        Assert.That(shards.Length, Is.LessThan(many));
        Assert.That(shards.All(s => s.Contains($"-of-{shards.Length:D5}", StringComparison.Ordinal)), Is.True,
            "only the new save's shards");
        a.SaveQuantized(PathOf("model.safetensors"));
        Assert.That(Directory.GetFiles(Folder, "model*").Select(Path.GetFileName),
            Is.EquivalentTo(new[] { "model.safetensors" }));
    }
}
