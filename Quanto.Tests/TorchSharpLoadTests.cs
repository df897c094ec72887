using NUnit.Framework;
using static TorchSharp.torch;

namespace Quanto.Tests;

/// <summary>libtorch must load on this machine (the build patches libLibTorchSharp.so for older libstdc++).</summary>
public sealed class TorchSharpLoadTests
{
    [Test]
    public void LibtorchComputesA2x2MatrixProduct()
    {
        using Tensor a = tensor(new float[] { 1, 2, 3, 4 }, [2, 2]);
        using Tensor b = tensor(new float[] { 5, 6, 7, 8 }, [2, 2]);
        using Tensor c = mm(a, b);
        // [1 2; 3 4] x [5 6; 7 8] = [19 22; 43 50]
        Assert.That(c.data<float>().ToArray(), Is.EqualTo(new float[] { 19, 22, 43, 50 }));
    }
}
