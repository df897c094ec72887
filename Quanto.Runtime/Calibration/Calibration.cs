using System.Runtime.CompilerServices;
using Quanto.Nn;
using static TorchSharp.torch;

namespace Quanto;

/// <summary>
/// Records activation ranges of quantized modules while forward passes run inside it:
/// <code>using (new Calibration(model, momentum: 0.9)) model.forward(samples);</code>
/// Per batch, each module with quantized activations observes its input and output (absmax by default); the first
/// batch sets the scale, later ones blend: scale = m * scale + (1 - m) * observed (inputs too: optimum-quanto
/// ignores the momentum for inputs), or as the <see cref="Observer"/> combines them (<see cref="RunningMaxObserver"/>
/// keeps the widest). A batch holding NaN or infinity is an error naming the module and the batch. With
/// <c>streamline</c>, a module whose output never reached another quantized module directly (it fed float ops or
/// left the model) stops quantizing its output: that would only add error (its calibrated output scale is still
/// saved, as optimum-quanto saves it). <see cref="Warnings"/> lists ranges that varied over 10x between batches and
/// int8 inputs whose typical values span only a few steps.
/// A calibration started on a model (<see cref="Calibration(nn.Module, double, Observer?, bool)"/>, or a [Quantize]
/// model's <c>Calibrate()</c>) records into that model's quantized modules only, whichever thread or async flow runs
/// them; others, and other models, are not affected. One started without a model is ambient: it records into every
/// quantized module run in the same async flow (an <see cref="AsyncLocal{T}"/>, so it follows awaits and never leaks
/// to other threads' work). Nesting restores the outer calibration on dispose.
/// </summary>
public sealed class Calibration : IDisposable
{
    private static readonly AsyncLocal<Calibration?> Ambient = new();

    private readonly Calibration? _outer;
    private readonly List<(QModule Module, Calibration? Outer)>? _scope;
    private readonly ConditionalWeakTable<Tensor, QModule> _producers = new();
    private readonly HashSet<QModule> _produced = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<QModule> _consumedByQuantized = new(ReferenceEqualityComparer.Instance);
    private readonly ActivationStatistics _statistics = new();
    private bool _disposed;

    /// <summary>Starts an ambient calibration: every quantized module run in this async flow records into it.
    /// Prefer <see cref="Calibration(nn.Module, double, Observer?, bool)"/>, which records one model only.</summary>
    /// <param name="momentum">Weight of the previous scale when a new batch is observed, in [0, 1).</param>
    /// <param name="observer">How a batch is reduced (default <see cref="AbsmaxObserver"/>).</param>
    /// <param name="streamline">Drop output quantization of modules whose outputs only feed float ops.</param>
    /// <exception cref="ArgumentOutOfRangeException">momentum outside [0, 1).</exception>
    public Calibration(double momentum = 0.9, Observer? observer = null, bool streamline = true)
    {
        (Momentum, Observer, Streamline) = Settings(momentum, observer, streamline);
        _outer = Ambient.Value;
        Ambient.Value = this;
    }

    /// <summary>Starts calibrating the quantized modules of <paramref name="model"/> (those of
    /// <see cref="Quantizer.QuantizedModules"/>; a [Quantize] model's twins too), wherever they run.</summary>
    /// <param name="model">The quantized model.</param>
    /// <param name="momentum">Weight of the previous scale when a new batch is observed, in [0, 1).</param>
    /// <param name="observer">How a batch is reduced (default <see cref="AbsmaxObserver"/>).</param>
    /// <param name="streamline">Drop output quantization of modules whose outputs only feed float ops.</param>
    /// <exception cref="ArgumentOutOfRangeException">momentum outside [0, 1).</exception>
    /// <exception cref="ArgumentException">The model has no quantized module (quantize it first).</exception>
    public Calibration(nn.Module model, double momentum = 0.9, Observer? observer = null, bool streamline = true)
        : this(Quantizer.QuantizedModules(model ?? throw new ArgumentNullException(nameof(model))).ToList(),
            model.GetName(), momentum, observer, streamline)
    {
    }

    /// <summary>Starts calibrating <paramref name="modules"/> only (a generated model's twins).</summary>
    internal Calibration(IReadOnlyCollection<QModule> modules, string model, double momentum, Observer? observer,
        bool streamline)
    {
        (Momentum, Observer, Streamline) = Settings(momentum, observer, streamline);
        if (modules.Count == 0)
        {
            throw new ArgumentException(
                $"{model} has no quantized module to calibrate; quantize it first (Quantizer.Quantize, or Quantize() " +
                "on a [Quantize] model).", nameof(modules));
        }
        _scope = modules.Distinct().Select(m => (m, m.ScopedCalibration)).ToList();
        foreach ((QModule module, Calibration? _) in _scope) module.ScopedCalibration = this;
    }

    /// <summary>The ambient calibration of this async flow, if any (model-scoped ones are not ambient).</summary>
    public static Calibration? Current => Ambient.Value;

    /// <summary>Weight of the previous scale.</summary>
    public double Momentum { get; }

    /// <summary>The batch statistic.</summary>
    public Observer Observer { get; }

    /// <summary>Whether output quantization is dropped where it only feeds float ops.</summary>
    public bool Streamline { get; }

    /// <summary>Modules whose output quantization streamlining turned off (filled on dispose).</summary>
    public IReadOnlyList<string> StreamlinedModules { get; private set; } = [];

    /// <summary>What the observed ranges suggest fixing, naming each module (filled on dispose).</summary>
    public IReadOnlyList<CalibrationWarning> Warnings { get; private set; } = [];

    /// <summary>Updates <paramref name="module"/>'s input scale from a batch, and notes whether the input came
    /// straight from another quantized module.</summary>
    /// <exception cref="InvalidOperationException">The batch holds NaN or infinity.</exception>
    internal void ObserveInput(QModule module, Tensor input)
    {
        if (_producers.TryGetValue(input, out QModule? producer)) _consumedByQuantized.Add(producer);
        _statistics.Observe(module, input, input: true, Observer, Momentum);
    }

    /// <summary>Updates <paramref name="module"/>'s output scale from a batch and remembers the output tensor.
    /// </summary>
    /// <exception cref="InvalidOperationException">The batch holds NaN or infinity.</exception>
    internal void ObserveOutput(QModule module, Tensor output)
    {
        _statistics.Observe(module, output, input: false, Observer, Momentum);
        _produced.Add(module);
    }

    /// <summary>Remembers which module produced a tensor handed to the caller.</summary>
    internal void TrackOutput(QModule module, Tensor output) => _producers.AddOrUpdate(output, module);

    /// <summary>Ends calibration: applies streamlining and restores the outer calibration.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (Streamline)
        {
            var streamlined = new List<string>();
            foreach (QModule module in _produced.Where(m => !_consumedByQuantized.Contains(m)))
            {
                module.DisableOutputQuantization();
                streamlined.Add(module.Path);
            }
            StreamlinedModules = streamlined;
        }
        Warnings = _statistics.Warnings(Observer);
        if (_scope is null)
        {
            if (ReferenceEquals(Ambient.Value, this)) Ambient.Value = _outer;
            return;
        }
        foreach ((QModule module, Calibration? outer) in _scope)
        {
            if (ReferenceEquals(module.ScopedCalibration, this)) module.ScopedCalibration = outer;
        }
    }

    private static (double, Observer, bool) Settings(double momentum, Observer? observer, bool streamline)
    {
        if (!(momentum >= 0 && momentum < 1))
            throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "Momentum lies in [0, 1).");
        return (momentum, observer ?? new AbsmaxObserver(), streamline);
    }
}
