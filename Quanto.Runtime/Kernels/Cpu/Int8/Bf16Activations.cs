using System.Runtime.CompilerServices;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// Float activation rows rounded to bfloat16 (round to nearest even) for the bf16 kernels of one
/// <see cref="DotWeight"/>: per unit and code plane (<see cref="DotFormats.Bf16Pairs"/>) one 32-bit pair per row,
/// the plane's first input in the low half, interleaved by row in tiles as <see cref="DotArgs"/> describes; and per
/// group the sum of the rounded values (the shift term of 2/4-bit weights). Holds scratch memory: dispose it.
/// </summary>
internal sealed unsafe class Bf16Activations : IDotActivations
{
    private readonly ScratchMemory.Lease _memory;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public Bf16Activations(float* source, int rows, DotWeight weight, int tileRows)
    {
        Rows = rows;
        TileRows = tileRows;
        Tiles = (rows + tileRows - 1) / tileRows;
        Groups = weight.Groups;
        UnitsPerGroup = weight.UnitsPerGroup;
        ReadOnlySpan<byte> pairs = weight.Format.Bf16Pairs();
        Planes = pairs.Length / 2;
        TileBytes = (long)tileRows * weight.PaddedK * 2; // two bytes per input
        long pairBytes = (TileBytes * Tiles + 63) / 64 * 64;
        long sumBytes = weight.Format.IsSigned() ? 0 : (long)Tiles * tileRows * Groups * sizeof(float);
        _memory = ScratchMemory.Rent(pairBytes + sumBytes, clear: true); // padded rows and inputs: zero
        Pairs = (uint*)_memory.Pointer;
        Sums = sumBytes == 0 ? null : (float*)((byte*)_memory.Pointer + pairBytes);
        int unitK = weight.Format.UnitK();
        for (int m = 0; m < rows; m++)
        {
            float* x = source + (long)m * weight.K;
            int tile = m / tileRows, r = m % tileRows;
            uint* target = Pairs + tile * TileBytes / 4 + r;
            for (int g = 0; g < Groups; g++)
            {
                float* group = x + (long)g * weight.GroupLength;
                for (int u = 0; u < UnitsPerGroup; u++)
                {
                    int k0 = u * unitK;
                    for (int p = 0; p < Planes; p++, target += tileRows)
                    {
                        int a = k0 + pairs[2 * p], b = k0 + pairs[2 * p + 1];
                        uint low = a < weight.GroupLength ? Round(group[a]) : 0;
                        uint high = b < weight.GroupLength ? Round(group[b]) : 0;
                        *target = low | high << 16;
                    }
                }
                if (Sums != null)
                {
                    float sum = 0;
                    for (int k = 0; k < weight.GroupLength; k++) sum += Widen(Round(group[k]));
                    Sums[((long)tile * Groups + g) * tileRows + r] = sum;
                }
            }
        }
    }

    public int Rows { get; }

    public int TileRows { get; }

    public int Tiles { get; }

    public int Groups { get; }

    public int UnitsPerGroup { get; }

    /// <summary>Code planes per unit.</summary>
    public int Planes { get; }

    /// <summary>Bytes of one tile's pairs.</summary>
    public long TileBytes { get; }

    /// <summary>Pairs, tile after tile.</summary>
    public uint* Pairs { get; }

    /// <summary>Per (tile, group, row) the sum of the rounded activations (2/4-bit weights), else null.</summary>
    public float* Sums { get; }

    /// <summary>float32 -> bfloat16 bits, round to nearest even (NaN stays a quiet NaN), as libtorch's cast.</summary>
    public static uint Round(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return 0x7FC0 | (bits >> 16 & 0x8000);
        return (bits + 0x7FFF + (bits >> 16 & 1)) >> 16;
    }

    /// <summary>bfloat16 bits -> float32 (exact).</summary>
    public static float Widen(uint bf16) => BitConverter.UInt32BitsToSingle(bf16 << 16);

    public void Bind(ref DotArgs args, int tile)
    {
        args.X = (sbyte*)((byte*)Pairs + tile * TileBytes);
        args.XScales = null;
        args.XCorrections = null;
        args.XSums = Sums == null ? null : Sums + (long)tile * TileRows * Groups;
        args.Groups = Groups;
        args.BlocksPerGroup = 1;
        args.UnitsPerBlock = UnitsPerGroup;
        args.Rows = TileRows;
    }

    public void Dispose() => _memory.Dispose();
}
