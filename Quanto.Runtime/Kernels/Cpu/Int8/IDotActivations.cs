namespace Quanto.Kernels.Cpu.Int8;

/// <summary>Activations laid out for the panel kernels (int8 codes or bf16 pairs), by tiles of rows.</summary>
internal interface IDotActivations : IDisposable
{
    /// <summary>Real rows (M).</summary>
    int Rows { get; }

    /// <summary>Rows per tile (R).</summary>
    int TileRows { get; }

    /// <summary>Tiles (M / R rounded up; the last one padded with zero rows).</summary>
    int Tiles { get; }

    /// <summary>Points the activation and loop-count fields of <paramref name="args"/> at tile
    /// <paramref name="tile"/>.</summary>
    void Bind(ref DotArgs args, int tile);
}
