namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// One int8-activation kernel: a managed method or assembled machine code, both taking <see cref="DotArgs"/> and
/// computing one tile of <see cref="TileRows"/> rows against one panel.
/// </summary>
internal readonly unsafe struct DotKernel
{
    private readonly delegate*<DotArgs*, void> _managed;
    private readonly delegate* unmanaged[SuppressGCTransition]<DotArgs*, void> _native;

    public DotKernel(string name, int tileRows, delegate*<DotArgs*, void> managed)
    {
        Name = name;
        TileRows = tileRows;
        _managed = managed;
    }

    /// <summary>Wraps assembled code; it runs without a GC transition (it is short and never calls back).</summary>
    public DotKernel(string name, int tileRows, delegate* unmanaged[SuppressGCTransition]<DotArgs*, void> native)
    {
        Name = name;
        TileRows = tileRows;
        _native = native;
    }

    /// <summary>"vnni512-asm", "avxvnni256", "avx2-256", "portable256", "scalar".</summary>
    public string Name { get; }

    /// <summary>Rows per tile this kernel is built for.</summary>
    public int TileRows { get; }

    public bool IsAssembled => _native != null;

    public void Invoke(DotArgs* args)
    {
        if (_native != null) _native(args);
        else _managed(args);
    }
}
