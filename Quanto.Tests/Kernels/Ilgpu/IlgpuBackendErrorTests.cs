using NUnit.Framework;
using Quanto.Kernels;
using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Ilgpu;

/// <summary>Clear errors for misuse: shapes, foreign or disposed weights, device memory freed on dispose.</summary>
[TestFixture]
public sealed class IlgpuBackendErrorTests
{
    [Test]
    public void ShapeMismatchNamesBothShapes()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight qw = WeightQuantizer.Quantize(IlgpuTestSupport.Random(1, 4, 32), QType.QInt8);
        using PreparedWeight prepared = IlgpuTestSupport.Cpu.Prepare(qw);

        var error = Assert.Throws<ArgumentException>(() => IlgpuTestSupport.Cpu.Linear(zeros(2, 31), prepared, null));
        Assert.That(error!.Message, Does.Contain("[2, 31]").And.Contain("[4, 32]"));
        var biasError = Assert.Throws<ArgumentException>(() =>
            IlgpuTestSupport.Cpu.Linear(zeros(2, 32), prepared, zeros(5)));
        Assert.That(biasError!.Message, Does.Contain("[5]"));
    }

    [Test]
    public void WeightsPreparedElsewhereAreRefused()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight qw = WeightQuantizer.Quantize(IlgpuTestSupport.Random(2, 4, 32), QType.QInt8);
        using PreparedWeight torchPrepared = TorchKernels.Instance.Prepare(qw);

        var error = Assert.Throws<ArgumentException>(() =>
            IlgpuTestSupport.Cpu.Linear(zeros(1, 32), torchPrepared, null));
        Assert.That(error!.Message, Does.Contain("torch"));
    }

    [Test]
    public void DisposedWeightFreesDeviceMemoryAndSaysSo()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight qw = WeightQuantizer.Quantize(IlgpuTestSupport.Random(3, 4, 64), QType.QInt4, 32);
        var prepared = (Quanto.Kernels.Ilgpu.IlgpuPreparedWeight)IlgpuTestSupport.Cpu.Prepare(qw);
        // 4 rows x 2 chunks (64 int4 codes) of codes, 8 scales, 8 shifts.
        Assert.That(prepared.DeviceBytes, Is.EqualTo(4 * 2 * 16 + 8 * 4 + 8 * 4));

        prepared.Dispose();

        Assert.That(prepared.IsDisposed, Is.True);
        var error = Assert.Throws<ObjectDisposedException>(() => IlgpuTestSupport.Cpu.Linear(zeros(1, 64), prepared, null));
        Assert.That(error!.Message, Does.Contain("prepare the weight again"));
        Assert.That(qw.IsDisposed, Is.False, "the canonical weight is not the backend's to free");
    }

    [Test]
    public void CanRunOnlyHostFloatInputs()
    {
        using var scope = NewDisposeScope();
        using QuantizedWeight qw = WeightQuantizer.Quantize(IlgpuTestSupport.Random(4, 4, 32), QType.QFloat8E5M2);

        Assert.That(IlgpuTestSupport.Cpu.CanRun(qw, ScalarType.Float32, CPU), Is.True);
        Assert.That(IlgpuTestSupport.Cpu.CanRun(qw, ScalarType.BFloat16, CPU), Is.True);
        Assert.That(IlgpuTestSupport.Cpu.CanRun(qw, ScalarType.Int32, CPU), Is.False);
    }
}
