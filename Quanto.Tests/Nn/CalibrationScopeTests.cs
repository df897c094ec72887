using NUnit.Framework;
using Quanto.Nn;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Nn;

/// <summary>
/// Issue #13 item 7: a calibration started on a model records that model only, wherever its forward passes run
/// (another thread, after an await), and never another model run meanwhile; one started without a model is an
/// async-flow ambient that does not leak into flows started before it. Scales are checked against absmax / 127.
/// </summary>
[TestFixture]
public sealed class CalibrationScopeTests
{
    [Test]
    public async Task A_model_calibration_follows_its_forward_passes_across_threads_and_awaits()
    {
        using Module<Tensor, Tensor> model = W8A8(out QLinear fc);
        using (new Calibration(model, streamline: false))
        {
            await Task.Yield();
            await Task.Run(() => Run(model, 3.81f)); // a thread-pool thread, not the one that started it
        }
        Assert.That(fc.input_scale.item<float>(), Is.EqualTo(3.81f / 127).Within(1e-7));
    }

    [Test]
    public void A_model_calibration_does_not_record_another_model()
    {
        using Module<Tensor, Tensor> calibrated = W8A8(out QLinear fc);
        using Module<Tensor, Tensor> other = W8A8(out QLinear _);
        using (new Calibration(calibrated, streamline: false))
        {
            Run(calibrated, 1.27f);
            var error = Assert.Throws<InvalidOperationException>(() => Run(other, 2.54f));
            Assert.That(error!.Message, Does.Contain("never calibrated"));
        }
        Assert.That(fc.input_scale.item<float>(), Is.EqualTo(0.01f).Within(1e-7));
    }

    [Test]
    public async Task Two_models_calibrate_at_once_each_from_its_own_batches()
    {
        using Module<Tensor, Tensor> a = W8A8(out QLinear fcA);
        using Module<Tensor, Tensor> b = W8A8(out QLinear fcB);
        using var bothStarted = new Barrier(2);
        Task Calibrate(Module<Tensor, Tensor> model, float magnitude) => Task.Run(() =>
        {
            using var calibration = new Calibration(model, streamline: false);
            bothStarted.SignalAndWait();
            Run(model, magnitude);
        });
        await Task.WhenAll(Calibrate(a, 1.27f), Calibrate(b, 12.7f));
        Assert.That(fcA.input_scale.item<float>(), Is.EqualTo(0.01f).Within(1e-7));
        Assert.That(fcB.input_scale.item<float>(), Is.EqualTo(0.1f).Within(1e-6));
    }

    [Test]
    public async Task An_ambient_calibration_stays_in_its_async_flow()
    {
        using Module<Tensor, Tensor> model = W8A8(out QLinear fc);
        var go = new TaskCompletionSource();
        Task before = Task.Run(async () =>
        {
            await go.Task;
            return Assert.Throws<InvalidOperationException>(() => Run(model, 2.54f));
        });
        using (new Calibration(streamline: false))
        {
            go.SetResult();
            await before; // started before the calibration: not recorded
            await Task.Run(() => Run(model, 1.27f)); // started inside it: recorded
        }
        Assert.That(fc.input_scale.item<float>(), Is.EqualTo(0.01f).Within(1e-7));
        Assert.That(Calibration.Current, Is.Null);
    }

    [Test]
    public void A_model_without_quantized_modules_cannot_be_calibrated()
    {
        using var model = Linear(4, 4);
        var error = Assert.Throws<ArgumentException>(() => _ = new Calibration(model));
        Assert.That(error!.Message, Does.Contain("quantize it first"));
    }

    /// <summary>One QLinear with int8 weights and activations, in eval mode.</summary>
    private static Module<Tensor, Tensor> W8A8(out QLinear fc)
    {
        var model = Sequential(("fc", Linear(4, 4)));
        model.eval();
        Quantizer.Quantize(model, QType.QInt8, QType.QInt8);
        fc = (QLinear)model.named_modules().Single().module;
        return model;
    }

    /// <summary>One batch whose absmax is <paramref name="magnitude"/>.</summary>
    private static void Run(Module<Tensor, Tensor> model, float magnitude)
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        model.forward(tensor(new[] { magnitude, 0.5f, -0.25f, 0 }, [1, 4]));
    }
}
