using NUnit.Framework;
using Quanto.Kernels.Cpu;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Cpu;

/// <summary>The README's "CPU kernel settings" examples, verbatim, so they keep compiling and running.</summary>
[TestFixture]
public sealed class CpuKernelsReadmeTests
{
    [Test]
    public void ThreadCountExampleRuns()
    {
        int torchBefore = get_num_threads(), kernelsBefore = CpuKernels.Threads;
        try
        {
            // --- README: thread count ---
            set_num_threads(2);                      // libtorch's own ops
            CpuKernels.Threads = get_num_threads();  // the quantized matmuls
            // --- end ---
            Assert.That(CpuKernels.Threads, Is.EqualTo(2));
        }
        finally
        {
            set_num_threads(torchBefore);
            CpuKernels.Threads = kernelsBefore;
        }
    }
}
