using NUnit.Framework;
using Quanto.Kernels;
using Quanto.Kernels.Cpu;
using Quanto.Tensors;
using static Quanto.Tests.Kernels.Cpu.CpuKernelTestData;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Cpu;

/// <summary>
/// Small weights keep a float32 copy, and each call runs the faster of the quantized kernel and F.linear on the copy
/// (decided once per shape and row bucket): both routes give x · dequant(W)ᵀ, the copy is counted, and an instance
/// made for one SIMD path never takes the copy.
/// </summary>
[TestFixture]
[NonParallelizable] // the route table and the copy limit are process-wide
public sealed class FloatCopyRoutesTests
{
    [TearDown]
    public void Restore()
    {
        FloatCopyRoutes.Reset();
        CpuKernels.FloatCopyLimit = 64 * 1024;
    }

    [TestCase(false)]
    [TestCase(true)]
    public void EitherRoute_GivesTheDequantizedProduct(bool useCopy)
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(QType.QInt4, 32), 48, 96, 4);
        using PreparedWeight prepared = CpuKernels.Instance.Prepare(weight);
        Tensor x = Input(3, 96, 4), bias = Bias(48, 4);
        FloatCopyRoutes.Force(new FloatCopyRoutes.Key(CpuWeightFormat.Int4, 96, 48, FloatCopyRoutes.Bucket(3), true),
            useCopy);
        Tensor y = CpuKernels.Instance.Linear(x, prepared, bias);
        double[] expected = ScalarReference(x, weight.Dequantize(), bias);
        Assert.That(RelativeError(y.data<float>().ToArray(), expected), Is.LessThanOrEqualTo(1e-5));
        Assert.That(CpuKernels.Instance.Linear(x.to(ScalarType.BFloat16), prepared, bias).dtype,
            Is.EqualTo(ScalarType.BFloat16), "bf16 in, bf16 out on either route");
    }

    [Test]
    public void TheFirstCall_DecidesOncePerShapeAndRowBucket()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight weight = Weight(new CpuWeightCase(QType.QInt8), 16, 64, 5);
        using PreparedWeight prepared = CpuKernels.Instance.Prepare(weight);
        foreach (int rows in new[] { 1, 5, 6, 7 }) CpuKernels.Instance.Linear(Input(rows, 64, rows), prepared, null);
        var keys = FloatCopyRoutes.Decisions.Keys.Where(k => k is { K: 64, N: 16 }).ToArray();
        Assert.That(keys.Select(k => k.RowBucket).Order(), Is.EqualTo(new[] { 0, 2 }), "1 row; 4-7 rows");
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
