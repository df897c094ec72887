using NUnit.Framework;
using Quanto.Tests.Generators.Samples;
using static TorchSharp.torch;

namespace Quanto.Tests.Generators;

/// <summary>
/// Issue #14 item 3: the transformer samples (pre-LN and post-LN encoder blocks with multi-head self-attention, a
/// decoder block with a hand-written RMSNorm and a SwiGLU MLP, a Conv1d audio block), compiled in this project by the generator. Their
/// layers are TorchSharp-style fields, so each sample's own class also takes the eager path: ForwardQuantized equals
/// <see cref="Quantizer.Quantize"/> on a second instance with the same weights, bit for bit, dynamic (after
/// calibration when activations are quantized) and frozen; and a frozen model saved, then loaded into a fresh instance
/// with other weights, gives the same outputs.
/// </summary>
[TestFixture]
public sealed class TransformerSampleTests : TestSupport.TempFolderTests
{
    [Test]
    public void Pre_LN_encoder_block_equals_the_eager_path()
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        manual_seed(14);
        var (x, padding) = (randn(2, 5, 32), tensor(new[] { false, false, false, true, true, false, false, false,
            false, false }, [2, 5]));
        var samples = (randn(2, 5, 32), padding);
        AssertEqualsEager(() => new PreLnEncoderBlock(), m => m.Quantize(),
            e => Quantizer.Quantize(e, QType.QInt8, QType.QInt8),
            (m, calibrating) => m.ForwardQuantized(calibrating ? samples.Item1 : x, padding),
            (e, calibrating) => e.forward(calibrating ? samples.Item1 : x, padding),
            m => m.Calibrate(), m => m.Freeze(), withCalibration: true);
    }

    [Test]
    public void Post_LN_encoder_block_with_a_tuple_output_equals_the_eager_path()
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        manual_seed(15);
        Tensor x = randn(2, 6, 64);
        Tensor mask = zeros(2, 1, 1, 6);
        mask[1, 0, 0, 4] = tensor(-10000f);
        AssertEqualsEager(() => new PostLnEncoderBlock(), m => m.Quantize(),
            e => Quantizer.Quantize(e, QType.QInt4, groupSize: 32),
            (m, _) => Cat(m.ForwardQuantized(x, mask)), (e, _) => Cat(e.forward(x, mask)),
            m => m.Calibrate(), m => m.Freeze(), withCalibration: false);
    }

    [Test]
    public void Decoder_block_with_rms_norm_and_swiglu_equals_the_eager_path()
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        manual_seed(16);
        Tensor x = randn(2, 4, 64);
        Tensor causal = full(4, 4, float.NegativeInfinity).triu(1).view(1, 1, 4, 4).expand(2, 1, 4, 4);
        Tensor positions = arange(4, ScalarType.Int64).repeat(2, 1);
        AssertEqualsEager(() => new DecoderBlock(), m => m.Quantize(),
            e =>
            {
                Quantizer.Quantize(e, QType.QInt4, exclude: ["down_proj"], groupSize: 32);
                Quantizer.Quantize(e, QType.QInt8, include: ["down_proj"]);
            },
            (m, _) => m.ForwardQuantized(x, causal, positions), (e, _) => e.forward(x, causal, positions),
            m => m.Calibrate(), m => m.Freeze(), withCalibration: false);
    }

    [Test]
    public void Conv1d_audio_block_equals_the_eager_path()
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        manual_seed(21);
        Tensor x = randn(2, 16, 40);
        AssertEqualsEager(() => new ConvAudioBlock(), m => m.Quantize(),
            e => Quantizer.Quantize(e, QType.QInt8),
            (m, _) => m.ForwardQuantized(x), (e, _) => e.forward(x),
            m => m.Calibrate(), m => m.Freeze(), withCalibration: false);
    }

    [TestCase(".qnt")]
    [TestCase(".safetensors")]
    public void A_frozen_conv1d_audio_block_round_trips_through_a_file(string extension)
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        manual_seed(22);
        Tensor x = randn(1, 16, 25);
        using var model = new ConvAudioBlock();
        model.Quantize();
        model.Freeze();
        float[] expected = Values(model.ForwardQuantized(x));
        string path = Path.Combine(Folder, "audio" + extension);
        model.SaveQuantized(path);
        manual_seed(23);
        using var fresh = new ConvAudioBlock();
        fresh.LoadQuantized(path);
        Assert.That(Values(fresh.ForwardQuantized(x)), Is.EqualTo(expected));
    }

    [TestCase(".qnt")]
    [TestCase(".safetensors")]
    public void A_frozen_pre_LN_block_round_trips_through_a_file(string extension)
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        manual_seed(17);
        Tensor x = randn(2, 5, 32), padding = zeros(2, 5, ScalarType.Bool);
        using var model = new PreLnEncoderBlock();
        model.eval();
        model.Quantize();
        using (model.Calibrate()) model.ForwardQuantized(randn(2, 5, 32), padding);
        model.Freeze();
        float[] expected = Values(model.ForwardQuantized(x, padding));
        string path = Path.Combine(Folder, "block" + extension);
        model.SaveQuantized(path);

        manual_seed(18);
        using var fresh = new PreLnEncoderBlock();
        fresh.eval();
        fresh.LoadQuantized(path);
        Assert.That(Values(fresh.ForwardQuantized(x, padding)), Is.EqualTo(expected));
    }

    [Test]
    public void A_frozen_decoder_block_round_trips_through_a_qnt_package()
    {
        using IDisposable scope = NewDisposeScope();
        using IDisposable noGrad = no_grad();
        manual_seed(19);
        Tensor x = randn(1, 3, 64), mask = zeros(1, 1, 3, 3), positions = arange(3, ScalarType.Int64).view(1, 3);
        using var model = new DecoderBlock();
        model.Quantize();
        model.Freeze();
        float[] expected = Values(model.ForwardQuantized(x, mask, positions));
        model.SaveQuantized(Path.Combine(Folder, "decoder.qnt"));
        manual_seed(20);
        using var fresh = new DecoderBlock();
        fresh.LoadQuantized(Path.Combine(Folder, "decoder.qnt"));
        Assert.That(Values(fresh.ForwardQuantized(x, mask, positions)), Is.EqualTo(expected));
    }

    /// <summary>The generated path on one instance and the eager one on another with the same weights: the same
    /// quantized modules, and the same outputs, dynamic (after calibration when asked) and frozen.</summary>
    private static void AssertEqualsEager<T>(Func<T> create, Action<T> quantize, Action<T> quantizeEager,
        Func<T, bool, Tensor> generated, Func<T, bool, Tensor> eager, Func<T, IDisposable> calibrate,
        Action<T> freeze, bool withCalibration)
        where T : nn.Module
    {
        T model = create(), twin = create();
        twin.load_state_dict(model.state_dict());
        model.eval();
        quantize(model);
        var swappedOut = twin.named_modules().Select(m => m.module).ToList();
        quantizeEager(twin);
        twin.eval();
        Assert.That(Quantizer.QuantizedModules(model).Select(m => m.Describe()),
            Is.EquivalentTo(Quantizer.QuantizedModules(twin).Select(m => m.Describe())));
        if (withCalibration)
        {
            using (calibrate(model)) generated(model, true);
            using (new Calibration(twin)) eager(twin, true);
        }
        Assert.That(Values(generated(model, false)), Is.EqualTo(Values(eager(twin, false))), "dynamic");
        freeze(model);
        Quantizer.Freeze(twin);
        Assert.That(Values(generated(model, false)), Is.EqualTo(Values(eager(twin, false))), "frozen");
        GC.KeepAlive(swappedOut);
        model.Dispose();
    }

    private static Tensor Cat((Tensor Hidden, Tensor Attention) output) =>
        cat([output.Hidden.flatten(), output.Attention.flatten()]);

    private static float[] Values(Tensor t) => t.contiguous().data<float>().ToArray();
}
