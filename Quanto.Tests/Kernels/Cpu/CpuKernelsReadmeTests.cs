using NUnit.Framework;
using Quanto.Kernels;
using Quanto.Kernels.Cpu;
using Quanto.Nn;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Kernels.Cpu;

/// <summary>The README's "CPU kernels: modes and settings" examples, verbatim, so they keep compiling and running.</summary>
[TestFixture]
[NonParallelizable] // process-wide settings
public sealed class CpuKernelsReadmeTests
{
    [Test]
    public void DynamicActivationsExampleRuns()
    {
        var model = Sequential(("fc", Linear(64, 32)), ("lm_head", Linear(32, 8)));
        model.eval();
        Quantizer.Quantize(model, weights: QType.QInt4, groupSize: 32);
        Quantizer.Freeze(model);
        try
        {
            // --- README: dynamic activations ---
            QuantKernels.DynamicActivations = DynamicActivations.Int8;      // every quantized module that sets nothing
            foreach (QModule m in Quantizer.QuantizedModules(model))
                if (m.Path == "lm_head") m.DynamicActivations = DynamicActivations.None;   // per module
            // --- end ---
            QModule[] modules = Quantizer.QuantizedModules(model).ToArray();
            Assert.That(modules.Select(m => m.EffectiveDynamicActivations),
                Is.EqualTo(new[] { DynamicActivations.Int8, DynamicActivations.None }));
            using var noGrad = no_grad();
            using Tensor y = model.forward(rand(3, 64));
            Assert.That(y.shape, Is.EqualTo(new long[] { 3, 8 }));
        }
        finally
        {
            QuantKernels.DynamicActivations = DynamicActivations.None;
            model.Dispose();
        }
    }

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
