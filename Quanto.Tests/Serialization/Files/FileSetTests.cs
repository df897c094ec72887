using NUnit.Framework;
using Quanto.Serialization;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Serialization;

/// <summary>
/// The states a killed save can leave, built by hand, and what the next load makes of them (issue 19): temporary files
/// without a journal (the save never committed: the old checkpoint, temporaries removed), a journal with none, some
/// or all of its renames done (the save committed: the new checkpoint), and journals that are not ours.
/// </summary>
public class FileSetTests : TempFolderTests
{
    private static Module<Tensor, Tensor> Quantized(QType qtype, long seed)
    {
        Module<Tensor, Tensor> model = Seeded.Create<Module<Tensor, Tensor>>(() => new Mlp(64, 32, 8), seed);
        Quantizer.Quantize(model, qtype);
        Quantizer.Freeze(model);
        return model;
    }

    private static string Hex() => Guid.NewGuid().ToString("N");

    /// <summary>Saves A into the test folder and B into another; returns B's files (name -> bytes).</summary>
    private Dictionary<string, byte[]> SaveAThenB(out SortedDictionary<string, byte[]> a,
        out SortedDictionary<string, byte[]> b)
    {
        using Module<Tensor, Tensor> modelA = Quantized(QType.QInt8, 1), modelB = Quantized(QType.QInt4, 2);
        QuantizedModel.Save(modelA, Path.Combine(Folder, "model.safetensors"), maxShardBytes: 1024);
        string other = Path.Combine(Folder, "b");
        Directory.CreateDirectory(other);
        QuantizedModel.Save(modelB, Path.Combine(other, "model.safetensors"), maxShardBytes: 1024);
        a = ModelCompare.Snapshot(modelA);
        b = ModelCompare.Snapshot(modelB);
        var files = Directory.GetFiles(other).Where(p => !Path.GetFileName(p).StartsWith('.'))
            .ToDictionary(p => Path.GetFileName(p), File.ReadAllBytes);
        Directory.Delete(other, recursive: true);
        return files;
    }

    private SortedDictionary<string, byte[]> Loaded()
    {
        using Module<Tensor, Tensor> fresh = Seeded.Create<Module<Tensor, Tensor>>(() => new Mlp(64, 32, 8), 5);
        fresh.LoadQuantized(Folder);
        return ModelCompare.Snapshot(fresh);
    }

    private string[] Hidden() => Directory.GetFiles(Folder).Select(Path.GetFileName).OfType<string>()
        .Where(n => n.StartsWith('.') && n != ".quanto.lock").Order().ToArray();

    [Test]
    public void AnUncommittedSaveLeavesTheOldCheckpointAndItsTemporariesGo()
    {
        Dictionary<string, byte[]> b = SaveAThenB(out var a, out _);
        foreach (var (name, bytes) in b) File.WriteAllBytes(Path.Combine(Folder, $".{name}.{Hex()}.tmp"), bytes);
        File.WriteAllBytes(Path.Combine(Folder, $".model.{Hex()}.shard.tmp"), [1, 2, 3]); // an older quanto quantize
        File.WriteAllText(Path.Combine(Folder, ".keep"), "not ours");
        string livePath = Path.Combine(Folder, $".x.safetensors.{Hex()}.tmp");
        using (var live = new FileStream(livePath, FileMode.CreateNew, FileAccess.Write, FileShare.Delete))
        {
            // A save in progress holds its temporary file open, as FileSetWriter does: it is left alone.
            Assert.That(Loaded(), Is.EqualTo(a));
            Assert.That(Hidden(), Is.EqualTo(new[] { ".keep", Path.GetFileName(live.Name) }));
        }
        Assert.That(Loaded(), Is.EqualTo(a));
        Assert.That(Hidden(), Is.EqualTo(new[] { ".keep" }));
    }

    [TestCase(0)]
    [TestCase(2)]
    [TestCase(-1)]
    public void ACommittedSaveIsFinishedByTheNextLoad(int renamedBeforeTheKill)
    {
        Dictionary<string, byte[]> b = SaveAThenB(out _, out var expected);
        var renames = new List<(string Temporary, string Target)>();
        foreach (var (name, bytes) in b)
        {
            string temporary = $".{name}.{Hex()}.tmp";
            File.WriteAllBytes(Path.Combine(Folder, temporary), bytes);
            renames.Add((temporary, name));
        }
        var journal = new Journal($".quanto-commit.{Hex()}.json", renames, ["model-00099-of-00099.safetensors"]);
        File.WriteAllBytes(Path.Combine(Folder, journal.Name), journal.ToBytes());
        File.WriteAllBytes(Path.Combine(Folder, "model-00099-of-00099.safetensors"), [0]); // a stale shard it removes
        int done = renamedBeforeTheKill < 0 ? renames.Count : renamedBeforeTheKill;
        foreach ((string temporary, string target) in renames.Take(done))
            File.Move(Path.Combine(Folder, temporary), Path.Combine(Folder, target), overwrite: true);
        Assert.That(Loaded(), Is.EqualTo(expected));
        Assert.That(Hidden(), Is.Empty);
        Assert.That(File.Exists(Path.Combine(Folder, "model-00099-of-00099.safetensors")), Is.False);
    }

    [Test]
    public void AJournalThatIsNotOursIsRefused()
    {
        SaveAThenB(out _, out _);
        string path = Path.Combine(Folder, $".quanto-commit.{Hex()}.json");
        File.WriteAllText(path, """{"rename": [], "delete": ["../elsewhere.safetensors"]}""");
        var e = Assert.Throws<QuantoFormatException>(() => Loaded())!;
        Assert.That(e.Message, Does.Contain("not a checkpoint file here"));
        File.WriteAllText(path, """{"rename": [["model.safetensors", "notes.txt"]], "delete": []}""");
        Assert.That(Assert.Throws<QuantoFormatException>(() => Loaded())!.Message,
            Does.Contain("is not one of its temporary files"));
        File.WriteAllText(path, """{"rename": [""");
        Assert.That(Assert.Throws<QuantoFormatException>(() => Loaded())!.Message, Does.Contain("not valid JSON"));
    }

    [Test]
    public void TheFolderLockExcludesASecondSaver()
    {
        Directory.CreateDirectory(Folder);
        using (FileSetWriter first = FileSetWriter.Begin(Folder, severalFiles: true))
        {
            Assert.That(FolderLock.TryExclusive(Folder), Is.Null, "held by the first save");
            first.Write("x.safetensors", s => s.Write([1]));
            first.Commit();
        }
        using FolderLock? again = FolderLock.TryExclusive(Folder);
        Assert.That(again, Is.Not.Null, "released by the first save");
    }
}
