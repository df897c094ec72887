using System.Runtime.CompilerServices;
using Quanto.Nn;
using static TorchSharp.torch;

namespace Quanto;

/// <summary>
/// Records activation ranges of quantized modules while forward passes run inside it:
/// <code>using (new Calibration(momentum: 0.9)) model.forward(samples);</code>
/// Per batch, each module with quantized activations observes its input and output (absmax by default); the first
/// batch sets the scale, later ones blend: scale = m * scale + (1 - m) * observed (inputs too: optimum-quanto
/// ignores the momentum for inputs), or as the <see cref="Observer"/> combines them (<see cref="RunningMaxObserver"/>
/// keeps the widest). A batch holding NaN or infinity is an error naming the module and the batch. With
/// <c>streamline</c>, a module whose output never reached another quantized module directly (it fed float ops or
/// left the model) stops quantizing its output: that would only add error (its calibrated output scale is still
/// saved, as optimum-quanto saves it). <see cref="Warnings"/> lists ranges that varied over 10x between batches and
/// int8 inputs whose typical values span only a few steps. The active calibration is per thread; nesting restores
/// the outer one on dispose.
/// </summary>
public sealed class Calibration : IDisposable
{
    [ThreadStatic]
    private static Calibration? _current;

    private readonly Calibration? _outer;
    private readonly ConditionalWeakTable<Tensor, QModule> _producers = new();
    private readonly HashSet<QModule> _produced = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<QModule> _consumedByQuantized = new(ReferenceEqualityComparer.Instance);
    private readonly ActivationStatistics _statistics = new();
    private bool _disposed;

    /// <summary>Starts calibrating on this thread.</summary>
    /// <param name="momentum">Weight of the previous scale when a new batch is observed, in [0, 1).</param>
    /// <param name="observer">How a batch is reduced (default <see cref="AbsmaxObserver"/>).</param>
    /// <param name="streamline">Drop output quantization of modules whose outputs only feed float ops.</param>
    /// <exception cref="ArgumentOutOfRangeException">momentum outside [0, 1).</exception>
    public Calibration(double momentum = 0.9, Observer? observer = null, bool streamline = true)
    {
        if (!(momentum >= 0 && momentum < 1))
            throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "Momentum lies in [0, 1).");
        Momentum = momentum;
        Observer = observer ?? new AbsmaxObserver();
        Streamline = streamline;
        _outer = _current;
        _current = this;
    }

    /// <summary>The calibration active on this thread, if any.</summary>
    public static Calibration? Current => _current;

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
        if (ReferenceEquals(_current, this)) _current = _outer;
    }
}
