using NUnit.Framework;
using Quanto.Kernels;
using Quanto.Kernels.Cpu;
using Quanto.Nn;
using Quanto.Quantization;
using Quanto.Tensors;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Kernels;

/// <summary>
/// The prepared-weight cache held in <see cref="QuantizedWeight"/>: one form per backend, made once even when the
/// first calls come from many threads at the same moment, freed with the weight.
/// </summary>
[TestFixture]
public sealed class PreparedWeightCacheTests
{
    private const int Callers = 8;

    [Test]
    public void ConcurrentFirstRequests_PrepareOnce()
    {
        using QuantizedWeight weight = WeightQuantizer.Quantize(Seeded.Uniform([16, 64]), QType.QInt4, 32);
        var backend = new Counting(TorchKernels.Instance, prepareDelayMs: 20);
        using var start = new Barrier(Callers);
        var forms = new PreparedWeight[Callers];
        Parallel.For(0, Callers, new ParallelOptions { MaxDegreeOfParallelism = Callers }, i =>
        {
            start.SignalAndWait();
            forms[i] = weight.PreparedFor(backend);
        });
        Assert.That(backend.Prepares, Is.EqualTo(1));
        Assert.That(forms, Has.All.SameAs(forms[0]));
        Assert.That(weight.PreparedFor(backend), Is.SameAs(forms[0]), "later requests reuse the form");
    }

    [Test]
    public void ParallelFirstForwards_ShareOnePreparedWeightAndMatchFloat()
    {
        using var model = Seeded.Create(() => Sequential(("fc", Linear(96, 40))));
        model.eval();
        Quantizer.Quantize(model, weights: QType.QInt4, groupSize: 32);
        Quantizer.Freeze(model);
        var fc = (QLinear)model.named_modules().Single().module;
        using Tensor x = Seeded.Uniform([3, 96]);
        using Tensor w = fc.QuantizedWeight!.Dequantize();
        using Tensor expected = functional.linear(x, w, fc.FloatBias);
        var backend = new Counting(CpuKernels.Instance, prepareDelayMs: 20);
        QuantKernels.Forced = backend;
        try
        {
            using var start = new Barrier(Callers);
            var errors = new double[Callers];
            Parallel.For(0, Callers, new ParallelOptions { MaxDegreeOfParallelism = Callers }, i =>
            {
                start.SignalAndWait();
                using var scope = NewDisposeScope();
                using var noGrad = no_grad();
                errors[i] = Reference.MaxRelativeError(model.forward(x), expected);
            });
            Assert.That(backend.Prepares, Is.EqualTo(1), "one prepared weight for all first callers");
            Assert.That(errors, Has.All.LessThanOrEqualTo(1e-5));
        }
        finally
        {
            QuantKernels.Forced = null;
        }
    }

    [Test]
    public void DisposingTheWeight_FreesItsFormsAndRefusesNewOnes()
    {
        QuantizedWeight weight = WeightQuantizer.Quantize(Seeded.Uniform([8, 64]), QType.QInt8);
        var backend = new Counting(TorchKernels.Instance);
        weight.PreparedFor(backend);
        Assert.That(weight.PreparedByteSize, Is.EqualTo(8 * 64 * 4), "the torch backend's float copy");
        weight.Dispose();
        Assert.That(backend.Disposed, Is.EqualTo(1));
        Assert.Throws<ObjectDisposedException>(() => weight.PreparedFor(backend));
    }

    [Test]
    public void ReleasePrepared_PreparesAgainOnTheNextRequest()
    {
        using QuantizedWeight weight = WeightQuantizer.Quantize(Seeded.Uniform([8, 64]), QType.QInt8);
        var backend = new Counting(TorchKernels.Instance);
        PreparedWeight first = weight.PreparedFor(backend);
        weight.ReleasePrepared();
        Assert.That(backend.Disposed, Is.EqualTo(1));
        Assert.That(weight.PreparedFor(backend), Is.Not.SameAs(first));
        Assert.That(backend.Prepares, Is.EqualTo(2));
    }

    /// <summary>A backend that delegates to another and counts (slowly, to widen the race) its Prepare calls.</summary>
    private sealed class Counting(IQuantKernels inner, int prepareDelayMs = 0) : IQuantKernels
    {
        private int _prepares;
        private int _disposed;

        public int Prepares => Volatile.Read(ref _prepares);

        public int Disposed => Volatile.Read(ref _disposed);

        public string Name => "counting";

        public bool CanRun(QuantizedWeight weight, ScalarType inputDtype, Device device) =>
            inner.CanRun(weight, inputDtype, device);

        public PreparedWeight Prepare(QuantizedWeight weight)
        {
            Interlocked.Increment(ref _prepares);
            Thread.Sleep(prepareDelayMs);
            return new Wrapped(weight, this, inner.Prepare(weight));
        }

        public Tensor Linear(Tensor input, PreparedWeight weight, Tensor? bias) =>
            inner.Linear(input, ((Wrapped)weight).Inner, bias);

        public Tensor LinearInt8(Tensor inputCodes, Tensor inputScale, PreparedWeight weight, Tensor? bias,
            ScalarType outputDtype) =>
            inner.LinearInt8(inputCodes, inputScale, ((Wrapped)weight).Inner, bias, outputDtype);

        internal sealed class Wrapped(QuantizedWeight source, Counting backend, PreparedWeight inner)
            : PreparedWeight(source, backend)
        {
            public PreparedWeight Inner { get; } = inner;

            public override long ByteSize => Inner.ByteSize;

            protected override void Dispose(bool disposing)
            {
                if (!disposing) return;
                Interlocked.Increment(ref backend._disposed);
                Inner.Dispose();
            }
        }
    }
}
