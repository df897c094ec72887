using System.Globalization;
using Quanto.Nn;
using Quanto.Tensors;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>Settings of <see cref="Quantizer.TuneScales(IEnumerable{QModule}, int, Func{int, Tensor},
/// ScaleTuningOptions?, IProgress{QuantizationProgress}?)"/>.</summary>
public sealed record ScaleTuningOptions
{
    /// <summary>Passes over the calibration batches (default 8).</summary>
    public int Epochs { get; init; } = 8;

    /// <summary>Adam's learning rate on the relative corrections (default 2e-3): a scale moves by about this
    /// fraction of itself a step, a shift by this fraction of its group's step. Decays to zero along a cosine over
    /// the run.</summary>
    public double LearningRate { get; init; } = 2e-3;

    /// <summary>Keep the result only if the mean loss over the batches with the tuned weights is below the loss
    /// of the untuned weights on the same batches (default true); otherwise the weights stay as they were and the
    /// report says so.</summary>
    public bool KeepOnlyIfBetter { get; init; } = true;

    internal void Check()
    {
        if (Epochs < 1)
            throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, "Tune for at least one epoch.");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate))
        {
            throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate,
                "The learning rate must be a positive finite number (2e-3 by default).");
        }
    }
}

/// <summary>What scale tuning did.</summary>
/// <param name="Layers">Paths of the layers whose scales and shifts were tuned.</param>
/// <param name="Skipped">Modules left as they were, with the reason.</param>
/// <param name="InitialLoss">Mean loss over the batches with the weights as they came.</param>
/// <param name="EpochLosses">Mean loss over the batches during each epoch (while the weights moved).</param>
/// <param name="FinalLoss">Mean loss over the batches with the tuned weights.</param>
/// <param name="Kept">Whether the tuned weights were kept (see <see cref="ScaleTuningOptions.KeepOnlyIfBetter"/>).
/// </param>
/// <param name="Time">Time of the whole run.</param>
public sealed record ScaleTuningReport(IReadOnlyList<string> Layers, IReadOnlyList<SkippedModuleInfo> Skipped,
    double InitialLoss, IReadOnlyList<double> EpochLosses, double FinalLoss, bool Kept, TimeSpan Time)
{
    /// <summary>One line: layers, loss before and after, whether kept, time (the first line of
    /// <see cref="ToString"/>).</summary>
    public string Summary => string.Create(CultureInfo.InvariantCulture,
        $"Scale tuning: {Layers.Count} layer(s), loss {InitialLoss:E3} -> {FinalLoss:E3} " +
        $"({(Kept ? "kept" : "not better: weights left as they were")}), {Time.TotalSeconds:F1} s");

    /// <inheritdoc />
    public override string ToString()
    {
        var lines = new List<string>
        {
            Summary,
            "  epochs: " + string.Join(", ", EpochLosses.Select(l => l.ToString("E3", CultureInfo.InvariantCulture))),
        };
        lines.AddRange(Skipped.Select(s => $"  {s.Path}: skipped: {s.Reason}"));
        return string.Join(Environment.NewLine, lines);
    }
}

/// <summary>
/// One frozen 2/4-bit layer under tuning: its codes as float, its scale and shift as they came, and the relative
/// corrections being learned (w = q * s0 (1 + a) - (t0 + s0 b)). The codes never change.
/// </summary>
internal sealed class TunedWeight : IDisposable
{
    private readonly WeightQBitsTensor _weight;
    private readonly Tensor _codes, _scale, _shift;

    internal TunedWeight(QModule module, WeightQBitsTensor weight)
    {
        Module = module;
        _weight = weight;
        using var noGrad = no_grad();
        using (Tensor codes = weight.UnpackCodes()) _codes = codes.to(ScalarType.Float32).DetachFromDisposeScope();
        _scale = weight.Scale.to(ScalarType.Float32, copy: true).DetachFromDisposeScope();
        _shift = weight.Shift.to(ScalarType.Float32, copy: true).DetachFromDisposeScope();
        ScaleCorrection = Correction(_scale);
        ShiftCorrection = Correction(_shift);
    }

    internal QModule Module { get; }

    internal Parameter ScaleCorrection { get; }

    internal Parameter ShiftCorrection { get; }

    /// <summary>The dequantized weight with the current corrections, differentiable in them, in the weight's shape
    /// and dtype.</summary>
    internal Tensor Weight()
    {
        (Tensor scale, Tensor shift) = Corrected();
        return _codes.mul(scale).sub(shift).view(_weight.Shape.ToArray()).to(_weight.DType);
    }

    /// <summary>The tuned weight: the same packed codes, the corrected scale and shift in the weight's dtype.
    /// </summary>
    internal WeightQBitsTensor Result()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        (Tensor scale, Tensor shift) = Corrected();
        return new WeightQBitsTensor(_weight.QType, _weight.Shape, _weight.GroupSize, _weight.Packed.clone(),
            scale.to(_weight.Scale.dtype), shift.to(_weight.Shift.dtype));
    }

    /// <summary>s0 (1 + a) and t0 + s0 b, float32, differentiable in the corrections.</summary>
    private (Tensor Scale, Tensor Shift) Corrected() =>
        (_scale.mul(ScaleCorrection.add(1)), _shift.add(_scale.mul(ShiftCorrection)));

    public void Dispose()
    {
        _codes.Dispose();
        _scale.Dispose();
        _shift.Dispose();
        ScaleCorrection.Dispose();
        ShiftCorrection.Dispose();
    }

    private static Parameter Correction(Tensor like)
    {
        var parameter = new Parameter(zeros_like(like));
        parameter.DetachFromDisposeScope();
        return parameter;
    }
}
