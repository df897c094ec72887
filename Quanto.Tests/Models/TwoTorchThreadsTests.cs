using NUnit.Framework;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

/// <summary>Tests of the models' libtorch thread choice: each starts with libtorch at two intra-op threads (so a
/// scope that sets one, and one that forgets to put the count back, are both visible) and gets the process's own
/// count back afterwards.</summary>
public abstract class TwoTorchThreadsTests : TempFolderTests
{
    private int _before;

    [SetUp]
    public void TwoTorchThreads()
    {
        _before = get_num_threads();
        set_num_threads(2);
    }

    [TearDown]
    public void RestoreTorchThreads() => set_num_threads(_before);
}
