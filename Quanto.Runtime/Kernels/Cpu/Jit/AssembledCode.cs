using System.Collections.Concurrent;

namespace Quanto.Kernels.Cpu.Jit;

/// <summary>
/// Assembled machine code by key: each key's code is assembled and published (W^X) once, on first use, under a lock;
/// in Debug builds it is run against its scalar reference before it is handed out. Lives for the process.
/// </summary>
/// <param name="assemble">The machine code of one key.</param>
/// <param name="check">The Debug-build check of the published code against the scalar reference (throws when
/// they disagree).</param>
internal sealed unsafe class AssembledCode<TKey>(Func<TKey, byte[]> assemble, Action<TKey, nint> check)
    where TKey : notnull
{
    private readonly ConcurrentDictionary<TKey, nint> _code = new();
    private readonly Lock _gate = new();

    /// <summary>The entry point of <paramref name="key"/>'s code.</summary>
    public nint Get(TKey key)
    {
        if (_code.TryGetValue(key, out nint code)) return code;
        lock (_gate)
        {
            if (_code.TryGetValue(key, out code)) return code;
            code = (nint)ExecutableMemory.Publish(assemble(key));
#if DEBUG
            check(key, code);
#else
            _ = check;
#endif
            _code[key] = code;
            return code;
        }
    }
}
