using Quanto.Tensors;

namespace Quanto.Kernels;

/// <summary>
/// The prepared forms of one <see cref="QuantizedWeight"/>, one per backend, held by the weight itself so that every
/// module, generated forward and thread that runs the weight shares them. Preparing takes milliseconds to seconds and
/// allocates the backend's copy, so concurrent first calls must not each make one: the first caller prepares under a
/// lock while the others wait for its result; later calls read the published array without locking.
/// </summary>
/// <remarks>
/// Forms are kept until the weight is disposed (or <see cref="Clear"/>), never replaced when another backend is
/// asked for: a thread may still be running the old form, and freeing its native memory under it would crash.
/// </remarks>
internal sealed class PreparedWeightCache
{
    private readonly Lock _gate = new();
    private PreparedWeight[] _forms = [];
    private bool _closed;

    /// <summary>The form <paramref name="backend"/> made of <paramref name="weight"/>, prepared on first use.</summary>
    /// <exception cref="ObjectDisposedException">The weight was disposed.</exception>
    public PreparedWeight GetOrPrepare(QuantizedWeight weight, IQuantKernels backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        PreparedWeight? found = Find(Volatile.Read(ref _forms), backend);
        if (found is not null) return found;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_closed, weight);
            found = Find(_forms, backend);
            if (found is not null) return found;
            PreparedWeight made = backend.Prepare(weight);
            Volatile.Write(ref _forms, [.. _forms, made]);
            return made;
        }
    }

    /// <summary>The forms made so far.</summary>
    public IReadOnlyList<PreparedWeight> Forms => Volatile.Read(ref _forms);

    /// <summary>Disposes every form; with <paramref name="close"/>, later requests throw (the weight is gone).</summary>
    public void Clear(bool close)
    {
        PreparedWeight[] forms;
        lock (_gate)
        {
            forms = _forms;
            _forms = [];
            _closed |= close;
        }
        foreach (PreparedWeight form in forms) form.Dispose();
    }

    private static PreparedWeight? Find(PreparedWeight[] forms, IQuantKernels backend)
    {
        foreach (PreparedWeight form in forms)
        {
            if (ReferenceEquals(form.Backend, backend)) return form;
        }
        return null;
    }
}
