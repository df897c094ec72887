using NUnit.Framework;
using Quanto.Nn;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Nn;

/// <summary>Frozen QConv2d on each of its paths against libtorch's conv2d at the dequantized weight.</summary>
public sealed class QConv2dTests
{
    // 64*128*3*3 = 73728 weights: above DirectConvolutionLimit, so unfold + the SIMD matmul kernels.
    [TestCase(64, 128, 3, 2, 1, 1, QType.QInt8)]
    [TestCase(64, 128, 3, 1, 2, 2, QType.QInt4)]
    [TestCase(64, 128, 3, 1, 1, 1, QType.QFloat8E4M3Fn)]
    // Small: the direct convolution on a float copy.
    [TestCase(3, 8, 3, 1, 1, 1, QType.QInt8)]
    [TestCase(8, 16, 5, 2, 0, 1, QType.QInt2)]
    public void FrozenMatchesConvAtTheDequantizedWeight(int cin, int cout, int kernel, int stride, int padding, int dilation,
        QType qtype)
    {
        using var model = Frozen(() => Conv2d(cin, cout, kernel, stride: stride, padding: padding, dilation: dilation),
            qtype, out QConv2d conv);
        Assert.That(conv.QuantizedWeight!.NumberOfElements > QConv2d.DirectConvolutionLimit,
            Is.EqualTo(cin * cout * kernel * kernel > QConv2d.DirectConvolutionLimit));

        using Tensor x = Seeded.Uniform([2, cin, 19, 17]);
        using Tensor actual = model.forward(x);
        using Tensor w = conv.QuantizedWeight.Dequantize();
        using Tensor expected = functional.conv2d(x, w, conv.FloatBias, [stride, stride], [padding, padding],
            [dilation, dilation]);
        Assert.That(actual.shape, Is.EqualTo(expected.shape));
        Assert.That(Reference.MaxRelativeError(actual, expected), Is.LessThanOrEqualTo(1e-5));
    }

    [Test]
    public void GroupedConvolutionUsesTheDequantizedWeight()
    {
        using var model = Frozen(() => Conv2d(8, 16, 3, groups: 4), QType.QInt8, out QConv2d conv);
        using Tensor x = Seeded.Uniform([1, 8, 10, 10]);
        using Tensor w = conv.QuantizedWeight!.Dequantize();
        using Tensor expected = functional.conv2d(x, w, conv.FloatBias, groups: 4);
        using Tensor actual = model.forward(x);
        Assert.That(Reference.MaxRelativeError(actual, expected), Is.LessThanOrEqualTo(1e-5));
    }

    [TestCase(3, 8, 5)] // direct convolution (torch backend)
    [TestCase(64, 128, 3)] // unfold + the CPU kernels
    public void AnInputSmallerThanTheKernelIsAClearError(int cin, int cout, int kernel)
    {
        using var model = Frozen(() => Conv2d(cin, cout, kernel), QType.QInt8, out _);
        var error = Assert.Throws<ArgumentException>(() => model.forward(ones(1, cin, 2, 2)))!;
        Assert.That(error.Message, Does.Contain($"[1, {cin}, 2, 2]").And.Contain($"{kernel}x{kernel} kernel"));
    }

    [Test]
    public void ABackendWithoutItsOwnConvolutionRunsItThroughItsMatmul()
    {
        var backend = new MatmulOnly();
        using var model = Frozen(() => Conv2d(3, 8, 3, padding: 1), QType.QInt4, out QConv2d conv);
        using Tensor x = Seeded.Uniform([2, 3, 9, 7]);
        using Tensor w = conv.QuantizedWeight!.Dequantize();
        using Tensor expected = functional.conv2d(x, w, conv.FloatBias, padding: [1, 1]);
        Quanto.Kernels.QuantKernels.Forced = backend;
        try
        {
            using Tensor actual = model.forward(x);
            Assert.That(backend.LinearCalls, Is.EqualTo(1), "IQuantKernels.Conv2d's default: unfold, then Linear");
            Assert.That(Reference.MaxRelativeError(actual, expected), Is.LessThanOrEqualTo(1e-5));
        }
        finally
        {
            Quanto.Kernels.QuantKernels.Forced = null;
        }
    }

    /// <summary>A one-convolution model, quantized and frozen; <paramref name="conv"/> is its QConv2d.</summary>
    private static Module<Tensor, Tensor> Frozen(Func<Module<Tensor, Tensor>> create, QType qtype, out QConv2d conv)
    {
        var model = Seeded.Create(() => Sequential(("conv", create())));
        model.eval();
        Quantizer.Quantize(model, weights: qtype);
        Quantizer.Freeze(model);
        conv = (QConv2d)model.named_modules().Single().module;
        return model;
    }

    /// <summary>A backend that implements the matmuls only (by the CPU kernels) and counts them.</summary>
    private sealed class MatmulOnly : Quanto.Kernels.IQuantKernels
    {
        private readonly Quanto.Kernels.Cpu.CpuKernels _inner = new();

        public int LinearCalls { get; private set; }

        public string Name => "matmul-only";

        public bool CanRun(Quanto.Tensors.QuantizedWeight weight, ScalarType inputDtype, Device device) =>
            _inner.CanRun(weight, inputDtype, device);

        public Quanto.Kernels.PreparedWeight Prepare(Quanto.Tensors.QuantizedWeight weight) => new Wrapped(weight, this,
            _inner.Prepare(weight));

        public Tensor Linear(Tensor input, Quanto.Kernels.PreparedWeight weight, Tensor? bias)
        {
            LinearCalls++;
            return _inner.Linear(input, ((Wrapped)weight).Inner, bias);
        }

        public Tensor LinearInt8(Tensor inputCodes, Tensor inputScale, Quanto.Kernels.PreparedWeight weight,
            Tensor? bias, ScalarType outputDtype) =>
            _inner.LinearInt8(inputCodes, inputScale, ((Wrapped)weight).Inner, bias, outputDtype);

        private sealed class Wrapped(Quanto.Tensors.QuantizedWeight source, Quanto.Kernels.IQuantKernels backend,
            Quanto.Kernels.PreparedWeight inner) : Quanto.Kernels.PreparedWeight(source, backend)
        {
            public Quanto.Kernels.PreparedWeight Inner { get; } = inner;

            protected override void Dispose(bool disposing)
            {
                if (disposing) Inner.Dispose();
            }
        }
    }

    [Test]
    public void WrongInputChannelsAreAClearError()
    {
        using var model = Frozen(() => Conv2d(3, 8, 3), QType.QInt8, out _);
        var error = Assert.Throws<ArgumentException>(() => model.forward(ones(1, 4, 8, 8)))!;
        Assert.That(error.Message, Does.Contain("QConv2d 'conv' (3 -> 8, kernel 3x3)").And.Contain("[1, 4, 8, 8]")
            .And.Contain("(batch, 3, height, width)"));
    }
}
