using NUnit.Framework;
using Quanto.Kernels;
using Quanto.Kernels.Cpu;
using Quanto.Tensors;
using static Quanto.Tests.Kernels.Cpu.CpuKernelTestData;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Cpu;

/// <summary>
/// Small weights keep a float32 copy; calls of 16 rows and more run F.linear on it, fewer rows the quantized kernel.
/// Both give x · dequant(W)ᵀ; the copy is counted; an instance made for one SIMD path never takes it.
/// </summary>
[TestFixture]
[NonParallelizable] // the copy limit is process-wide
public sealed class FloatCopyRoutesTests
{
    [TearDown]
    public void Restore() => CpuKernels.FloatCopyLimit = 64 * 1024;

    [TestCase(1)]
    [TestCase(15)]
    [TestCase(16)]
    [TestCase(40)]
    public void EitherRoute_GivesTheDequantizedProduct_AndManyRowsTakeTheCopy(int rows)
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(QType.QInt4, 32), 48, 96, 4);
        using PreparedWeight prepared = CpuKernels.Instance.Prepare(weight);
        Tensor x = Input(rows, 96, 4), bias = Bias(48, 4);
        Tensor y = CpuKernels.Instance.Linear(x, prepared, bias);
        double[] expected = ScalarReference(x, weight.Dequantize(), bias);
        Assert.That(RelativeError(y.data<float>().ToArray(), expected), Is.LessThanOrEqualTo(1e-5));
        float[] copyRoute = nn.functional.linear(x, weight.Dequantize(), bias).data<float>().ToArray();
        if (rows >= FloatCopyRoutes.CopyMinRows)
            Assert.That(y.data<float>().ToArray(), Is.EqualTo(copyRoute), "F.linear on the copy, bit for bit");
        Assert.That(CpuKernels.Instance.Linear(x.to(ScalarType.BFloat16), prepared, bias).dtype,
            Is.EqualTo(ScalarType.BFloat16), "bf16 in, bf16 out on either route");
    }

    [Test]
    public void SmallWeightsKeepACountedCopy_LargeOnesAndPathInstancesDoNot()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight small = Weight(new CpuWeightCase(QType.QInt4), 128, 512, 6);
        using QuantizedWeight large = Weight(new CpuWeightCase(QType.QInt4), 129, 512, 6);
        PreparedWeight prepared = small.PreparedFor(CpuKernels.Instance);
        Assert.That(prepared.FloatCopyBytes, Is.EqualTo(128 * 512 * 4));
        Assert.That(small.PreparedFloatCopyBytes, Is.EqualTo(128 * 512 * 4));
        Assert.That(prepared.ByteSize, Is.GreaterThanOrEqualTo(prepared.FloatCopyBytes));
        using PreparedWeight big = CpuKernels.Instance.Prepare(large);
        Assert.That(big.FloatCopyBytes, Is.Zero, "129 x 512 is over the 64 Ki-element limit");
        using PreparedWeight path = new CpuKernels(CpuFeatures.Best).Prepare(small);
        Assert.That(path.FloatCopyBytes, Is.Zero, "an instance made for one path runs that path");
        CpuKernels.FloatCopyLimit = 0;
        using PreparedWeight none = CpuKernels.Instance.Prepare(small);
        Assert.That(none.FloatCopyBytes, Is.Zero);
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuKernels.FloatCopyLimit = -1);
    }
}
