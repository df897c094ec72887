using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Kernels;

/// <summary>
/// Backend choice, in one place: the registered backends are asked in priority order (highest first) whether they can
/// run a weight; the managed SIMD <see cref="Cpu.CpuKernels"/> is registered by default, and <see cref="TorchKernels"/>
/// is always last and runs everything. <see cref="Forced"/> overrides the
/// choice (tests, benchmarks, a user who wants one backend).
/// </summary>
public static class QuantKernels
{
    /// <summary>Priority of the managed SIMD CPU backend, registered by default.</summary>
    public const int CpuPriority = 100;

    private static readonly Lock Gate = new();
    private static (IQuantKernels Backend, int Priority)[] _registered = [(Cpu.CpuKernels.Instance, CpuPriority)];

    /// <summary>
    /// The <see cref="Kernels.DynamicActivations"/> mode of quantized modules that do not set their own
    /// (<c>QModule.DynamicActivations</c>): <see cref="Kernels.DynamicActivations.None"/> (float activations) unless
    /// changed. Read at every call, so it can be switched between forwards.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An undefined mode.</exception>
    public static DynamicActivations DynamicActivations
    {
        get => (DynamicActivations)Volatile.Read(ref _dynamicActivations);
        set
        {
            KernelChecks.CheckDynamic(value);
            Volatile.Write(ref _dynamicActivations, (int)value);
        }
    }

    private static int _dynamicActivations;

    /// <summary>When set, every selection returns this backend (which must be able to run the weight).</summary>
    public static IQuantKernels? Forced { get; set; }

    /// <summary>The registered backends, highest priority first, then the torch fallback.</summary>
    public static IReadOnlyList<IQuantKernels> Backends
    {
        get
        {
            var list = Volatile.Read(ref _registered).Select(r => r.Backend).ToList();
            list.Add(TorchKernels.Instance);
            return list;
        }
    }

    /// <summary>Adds (or re-prioritises) a backend. Higher priority is asked first.</summary>
    public static void Register(IQuantKernels backend, int priority)
    {
        ArgumentNullException.ThrowIfNull(backend);
        lock (Gate)
        {
            _registered = _registered.Where(r => !ReferenceEquals(r.Backend, backend))
                .Append((Backend: backend, Priority: priority))
                .OrderByDescending(r => r.Priority)
                .ToArray();
        }
    }

    /// <summary>Removes a backend; false if it was not registered.</summary>
    public static bool Unregister(IQuantKernels backend)
    {
        lock (Gate)
        {
            int before = _registered.Length;
            _registered = _registered.Where(r => !ReferenceEquals(r.Backend, backend)).ToArray();
            return _registered.Length != before;
        }
    }

    /// <summary>The backend that will run <paramref name="weight"/> for this input dtype and device.</summary>
    /// <exception cref="NotSupportedException">The forced backend cannot run the weight.</exception>
    public static IQuantKernels Select(QuantizedWeight weight, ScalarType inputDtype, Device device)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (Forced is { } forced)
        {
            return forced.CanRun(weight, inputDtype, device)
                ? forced
                : throw new NotSupportedException(
                    $"The forced backend '{forced.Name}' cannot run {weight} for {inputDtype} inputs on {device}.");
        }
        foreach ((IQuantKernels backend, _) in Volatile.Read(ref _registered))
        {
            if (backend.CanRun(weight, inputDtype, device)) return backend;
        }
        return TorchKernels.Instance;
    }
}
