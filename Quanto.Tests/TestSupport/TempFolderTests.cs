using NUnit.Framework;
using Quanto.Tests.Serialization;

namespace Quanto.Tests.TestSupport;

/// <summary>Base of fixtures that write files: a fresh temporary folder per test, deleted after it (NUnit runs this
/// set-up before a derived fixture's own).</summary>
public abstract class TempFolderTests
{
    /// <summary>This test's folder.</summary>
    protected string Folder { get; private set; } = "";

    [SetUp]
    public void CreateFolder() => Folder = SerializationTestUtil.NewFolder();

    [TearDown]
    public void DeleteFolder() => Directory.Delete(Folder, recursive: true);
}
