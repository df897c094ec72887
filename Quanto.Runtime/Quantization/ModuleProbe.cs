using Quanto.Nn;
using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>
/// Puts a set of quantized modules in measuring mode for the passes of an accuracy algorithm (GPTQ, smoothing,
/// sensitivity): while attached, each module runs in float, with activations unquantized and calibration untouched,
/// using the weight the probe gives it (its float weight by default, or a candidate set with <see cref="SetWeight"/>),
/// and reports each input it sees. Works for eager modules and generated twins alike, since both go through the
/// module's stubs. Dispose to detach; the modules are then as before.
/// </summary>
internal sealed class ModuleProbe : IDisposable
{
    private readonly List<QModule> _modules;
    private readonly Dictionary<QModule, Tensor> _weights = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<QModule, Tensor> _dequantized = new(ReferenceEqualityComparer.Instance);

    private ModuleProbe(List<QModule> modules) => _modules = modules;

    private Action<QModule, Tensor>? _onInput;

    /// <summary>Attaches a probe to <paramref name="modules"/>.</summary>
    /// <exception cref="InvalidOperationException">A module is already probed (algorithms do not nest).</exception>
    internal static ModuleProbe Attach(IEnumerable<QModule> modules)
    {
        List<QModule> list = modules.Distinct().ToList();
        QModule? busy = list.FirstOrDefault(m => m.Probe is not null);
        if (busy is not null)
            throw new InvalidOperationException($"{busy.Describe()} is already being measured by another pass.");
        var probe = new ModuleProbe(list);
        foreach (QModule module in list) module.Probe = probe;
        return probe;
    }

    /// <summary>Runs <paramref name="module"/> with <paramref name="weight"/> (not owned: the caller keeps and
    /// disposes it); null restores the default.</summary>
    internal void SetWeight(QModule module, Tensor? weight)
    {
        if (weight is null) _weights.Remove(module);
        else _weights[module] = weight;
    }

    /// <summary>Runs the caller's pass (the model on its calibration batches) once without gradients, with
    /// <paramref name="onInput"/> seeing every input of every probed module.</summary>
    /// <returns>The pass's output, which the caller disposes.</returns>
    internal Tensor Run(Func<Tensor> pass, Action<QModule, Tensor>? onInput = null)
    {
        _onInput = onInput;
        try
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            Tensor output = pass() ?? throw new InvalidOperationException("The calibration pass returned no output.");
            return output.detach().MoveToOuterDisposeScope();
        }
        finally
        {
            _onInput = null;
        }
    }

    /// <summary>The probed modules the pass reaches, in the order they first see an input.</summary>
    internal List<QModule> Order(Func<Tensor> pass)
    {
        var order = new List<QModule>();
        var seen = new HashSet<QModule>(ReferenceEqualityComparer.Instance);
        Run(pass, (module, _) =>
        {
            if (seen.Add(module)) order.Add(module);
        }).Dispose();
        return order;
    }

    /// <summary>Passes an input to the running pass's observer (the tensor is the caller's: copy what you keep).
    /// </summary>
    internal void Observe(QModule module, Tensor input) => _onInput?.Invoke(module, input);

    /// <summary>The weight the module runs with: a set one, its float weight, or (frozen) its dequantized weight,
    /// made once per probe.</summary>
    internal Tensor WeightFor(QModule module)
    {
        if (_weights.TryGetValue(module, out Tensor? set)) return set;
        if (module.FloatWeight is Tensor w) return w;
        if (!_dequantized.TryGetValue(module, out Tensor? dq))
        {
            dq = module.QuantizedWeight!.Dequantize().DetachFromDisposeScope();
            _dequantized[module] = dq;
        }
        return dq;
    }

    /// <summary>Detaches from every module and frees the dequantized copies.</summary>
    public void Dispose()
    {
        foreach (QModule module in _modules)
        {
            if (ReferenceEquals(module.Probe, this)) module.Probe = null;
        }
        foreach (Tensor t in _dequantized.Values) t.Dispose();
        _dequantized.Clear();
        _weights.Clear();
    }
}
