using NUnit.Framework;
using Quanto.Kernels;
using Quanto.Kernels.Cpu;
using Quanto.Kernels.Cpu.Int8;
using Quanto.Tensors;
using static Quanto.Tests.Kernels.Cpu.CpuKernelTestData;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Cpu;

/// <summary>
/// Static W8A8 (int8 codes with one per-tensor scale) on every int8-activation kernel path this CPU runs: the output
/// must match libtorch's exact int64 product rescaled (the int32 sums are exact, see also
/// <see cref="CpuKernelsDynamicTests.Kernel_EqualsTheScalarReferenceBitForBit"/>) and the torch backend's LinearInt8.
/// </summary>
[TestFixture]
public class CpuKernelsInt8Tests
{
    private static readonly (int M, int K, int N)[] Shapes = [(1, 256, 37), (3, 131, 70), (64, 300, 45), (130, 64, 5)];

    public static IEnumerable<TestCaseData> Cases()
    {
        foreach (DotPath path in Enum.GetValues<DotPath>().Where(p => p != DotPath.Auto))
        {
            foreach ((int m, int k, int n) in Shapes)
            {
                yield return new TestCaseData(path.ToString(), m, k, n).SetName($"LinearInt8_{path}_M{m}_K{k}_N{n}");
            }
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void Output_MatchesTheExactProductAndTorch(string pathName, int m, int k, int n)
    {
        DotPath path = Enum.Parse<DotPath>(pathName);
        CpuKernelsDynamicTests.RequireSupported(path);
        using var scope = NewDisposeScope();
        int seed = m + k + n;
        using var weight = (WeightQBytesTensor)Weight(new CpuWeightCase(QType.QInt8), n, k, seed);
        var generator = new TorchSharp.torch.Generator((ulong)seed);
        // The full int8 range, including -128 (the +128 weight offset must handle it).
        Tensor codes = randint(-128, 128, [m, k], generator: generator).to(ScalarType.Int8);
        Tensor inputScale = tensor(0.0173f);
        Tensor bias = Bias(n, seed);
        var kernels = new CpuKernels(CpuKernelPath.Auto) { DotPath = path };
        using PreparedWeight prepared = kernels.Prepare(weight);

        Tensor actual = kernels.LinearInt8(codes, inputScale, prepared, bias, ScalarType.Float32);

        Tensor exact = codes.to(ScalarType.Int64).mm(weight.Data.to(ScalarType.Int64).t()).to(ScalarType.Float64)
            .mul(0.0173).mul(weight.Scale.reshape(1, n).to(ScalarType.Float64)).add(bias.to(ScalarType.Float64));
        Assert.That(RelativeError(actual.data<float>().ToArray(), ToDoubles(exact)), Is.LessThanOrEqualTo(1e-6));
        using PreparedWeight reference = TorchKernels.Instance.Prepare(weight);
        Tensor expected = TorchKernels.Instance.LinearInt8(codes, inputScale, reference, bias, ScalarType.Float32);
        Assert.That(RelativeError(actual.data<float>().ToArray(), ToDoubles(expected)), Is.LessThanOrEqualTo(1e-6));
    }

    [Test]
    public void LinearInt8_RejectsNonInt8WeightsAndInputs()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight int4 = Weight(new CpuWeightCase(QType.QInt4), 4, 128, 1);
        using PreparedWeight prepared4 = CpuKernels.Instance.Prepare(int4);
        Tensor codes = zeros([1, 128], ScalarType.Int8);
        var e = Assert.Throws<ArgumentException>(() =>
            CpuKernels.Instance.LinearInt8(codes, tensor(1f), prepared4, null, ScalarType.Float32));
        Assert.That(e!.Message, Does.Contain("qint8"));

        using QuantizedWeight int8 = Weight(new CpuWeightCase(QType.QInt8), 4, 128, 1);
        using PreparedWeight prepared8 = CpuKernels.Instance.Prepare(int8);
        Assert.Throws<ArgumentException>(() =>
            CpuKernels.Instance.LinearInt8(zeros(1, 128), tensor(1f), prepared8, null, ScalarType.Float32));
        var shape = Assert.Throws<ArgumentException>(() =>
            CpuKernels.Instance.LinearInt8(zeros([1, 127], ScalarType.Int8), tensor(1f), prepared8, null,
                ScalarType.Float32));
        Assert.That(shape!.Message, Does.Contain("[1, 127]").And.Contain("[4, 128]"));
    }
}
