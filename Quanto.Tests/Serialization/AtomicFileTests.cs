using NUnit.Framework;
using Quanto.Serialization;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Serialization;

public class AtomicFileTests : TempFolderTests
{
    [Test]
    public void AFailureMidWriteLeavesTheOldFileIntactAndNoTemporaryFile()
    {
        string path = Path.Combine(Folder, "model.safetensors");
        using Tensor t = ones(16);
        Safetensors.Save(path, [KeyValuePair.Create("w", t)]);
        byte[] before = File.ReadAllBytes(path);
        var e = Assert.Throws<IOException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write(new byte[1000]); // half a file is already out...
            throw new IOException("disk full"); // ...when the write fails
        }))!;
        Assert.That(e.Message, Is.EqualTo("disk full"));
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(before));
        Assert.That(Directory.GetFiles(Folder).Select(Path.GetFileName), Is.EqualTo(new[] { "model.safetensors" }));
    }

    [Test]
    public void AFailingTensorMidSaveLeavesTheOldPackageIntact()
    {
        string path = Path.Combine(Folder, "model.qnt");
        using (var package = new QntPackage())
        {
            package.Add("a", ones(4));
            package.Save(path);
        }
        byte[] before = File.ReadAllBytes(path);
        using (var package = new QntPackage())
        {
            package.Add("a", ones(4));
            package.Add("b", ones(4, dtype: ScalarType.ComplexFloat32)); // no .qnt dtype: fails after 'a' is written
            Assert.Throws<NotSupportedException>(() => package.Save(path));
        }
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(before));
        Assert.That(Directory.GetFiles(Folder), Has.Length.EqualTo(1));
    }

    [Test]
    public void ReplacesTheFileOnSuccess()
    {
        string path = Path.Combine(Folder, "quanto_qmap.json");
        File.WriteAllText(path, "old");
        var map = new QuantizationMap { { "fc", new QuantizationSpec(QType.QInt4, null) } };
        map.Save(path);
        Assert.That(QuantizationMap.Load(path)["fc"].Weights, Is.EqualTo(QType.QInt4));
        Assert.Throws<DirectoryNotFoundException>(() => map.Save(Path.Combine(Folder, "no", "x.json")));
    }
}
