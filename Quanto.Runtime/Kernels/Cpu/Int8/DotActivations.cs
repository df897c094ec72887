using System.Runtime.CompilerServices;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// Float activation rows quantized to int8 for one <see cref="DotWeight"/> and <see cref="ActivationBlocking"/>:
/// per block an absmax scale (max |x| / 127) and codes round(x / scale) with ties to even, written in the weight's
/// padded group layout and interleaved by row in tiles of <see cref="TileRows"/> (see <see cref="DotArgs"/>); per
/// block the correction 128 * sum(codes) (qint8 weights) and per group the dequantized sum, sum(scale * sum(codes))
/// (the shift term of 2/4-bit weights, computed from the same quantized activations). Holds scratch memory
/// (see ScratchMemory): dispose it.
/// </summary>
internal sealed unsafe class DotActivations : IDisposable
{
    private readonly ScratchMemory.Lease _memory;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public DotActivations(float* source, int rows, DotWeight weight, ActivationBlocking blocking, int tileRows)
    {
        if (blocking.GroupLength != weight.GroupLength)
            throw new ArgumentException($"Activation blocks of {blocking} do not fit the weight's groups.");
        Rows = rows;
        TileRows = tileRows;
        Tiles = (rows + tileRows - 1) / tileRows;
        Groups = weight.Groups;
        PaddedK = weight.PaddedK;
        // A block is 32 inputs, or the whole (padded) group when it is the group.
        int paddedBlock = blocking.BlockLength == blocking.GroupLength ? weight.PaddedGroup : DotFormats.GroupAlign;
        BlocksPerGroup = weight.PaddedGroup / paddedBlock;
        UnitsPerBlock = paddedBlock / weight.Format.UnitK();
        int blocks = Groups * BlocksPerGroup;
        long codeBytes = Align((long)Tiles * tileRows * PaddedK);
        long scaleBytes = Align((long)Tiles * tileRows * blocks * sizeof(float));
        long correctionBytes = weight.Format.IsSigned() ? scaleBytes : 0;
        long sumBytes = weight.Format.IsSigned() ? 0 : Align((long)Tiles * tileRows * Groups * sizeof(float));
        long total = codeBytes + scaleBytes + correctionBytes + sumBytes;
        _memory = ScratchMemory.Rent(total, clear: true); // padded rows and inputs: code 0, scale 0
        Codes = (sbyte*)_memory.Pointer;
        Scales = (float*)((byte*)_memory.Pointer + codeBytes);
        Corrections = correctionBytes == 0 ? null : (int*)((byte*)Scales + scaleBytes);
        Sums = sumBytes == 0 ? null : (float*)((byte*)Scales + scaleBytes + correctionBytes);
        for (int m = 0; m < rows; m++) QuantizeRow(source + (long)m * weight.K, m, weight, blocking);
    }

    /// <summary>Real rows (M).</summary>
    public int Rows { get; }

    /// <summary>Rows per tile (R: 1 for row-by-row kernels, 4 for the many-row ones).</summary>
    public int TileRows { get; }

    /// <summary>Tiles (M / R rounded up; the last one padded with zero rows).</summary>
    public int Tiles { get; }

    public int Groups { get; }

    public int BlocksPerGroup { get; }

    public int UnitsPerBlock { get; }

    /// <summary>Inputs per row in the weight's padded layout.</summary>
    public int PaddedK { get; }

    public sbyte* Codes { get; }

    public float* Scales { get; }

    /// <summary>Per (tile, block, row) 128 * sum of codes, for qint8 weights; else null.</summary>
    public int* Corrections { get; }

    /// <summary>Per (tile, group, row) the dequantized sum, for 2/4-bit weights; else null.</summary>
    public float* Sums { get; }

    /// <summary>Points <paramref name="args"/> at tile <paramref name="tile"/>.</summary>
    public void Bind(ref DotArgs args, int tile)
    {
        int blocks = Groups * BlocksPerGroup;
        args.X = Codes + (long)tile * TileRows * PaddedK;
        args.XScales = Scales + (long)tile * TileRows * blocks;
        args.XCorrections = Corrections == null ? null : Corrections + (long)tile * TileRows * blocks;
        args.XSums = Sums == null ? null : Sums + (long)tile * TileRows * Groups;
        args.Groups = Groups;
        args.BlocksPerGroup = BlocksPerGroup;
        args.UnitsPerBlock = UnitsPerBlock;
        args.Rows = TileRows;
    }

    public void Dispose() => _memory.Dispose();

    private static long Align(long bytes) => (bytes + 63) / 64 * 64;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void QuantizeRow(float* x, int m, DotWeight weight, ActivationBlocking blocking)
    {
        int tile = m / TileRows, r = m % TileRows, rows = TileRows;
        sbyte* codes = Codes + (long)tile * rows * PaddedK;
        int blocks = Groups * BlocksPerGroup;
        float* scales = Scales + (long)tile * rows * blocks;
        int* corrections = Corrections == null ? null : Corrections + (long)tile * rows * blocks;
        float* sums = Sums == null ? null : Sums + (long)tile * rows * Groups;
        int g = blocking.GroupLength, length = blocking.BlockLength;
        for (int group = 0; group < Groups; group++)
        {
            float groupSum = 0;
            for (int b = 0; b < BlocksPerGroup; b++)
            {
                int start = b * length, count = Math.Min(length, g - start);
                float* p = x + (long)group * g + start;
                float absmax = 0;
                for (int i = 0; i < count; i++) absmax = Math.Max(absmax, Math.Abs(p[i]));
                // A NaN or infinity makes the block's scale NaN, so the row's results are NaN as in float math.
                float scale = float.IsFinite(absmax) ? absmax / 127f : float.NaN;
                int sum = 0;
                if (scale != 0 && float.IsFinite(scale))
                {
                    int padded = group * weight.PaddedGroup + start;
                    for (int i = 0; i < count; i++)
                    {
                        int code = (int)Math.Clamp(MathF.Round(p[i] / scale), -127f, 127f);
                        int k = padded + i;
                        codes[(k >> 2) * 4 * rows + r * 4 + (k & 3)] = (sbyte)code;
                        sum += code;
                    }
                }
                int block = group * BlocksPerGroup + b;
                scales[block * rows + r] = scale;
                if (corrections != null) corrections[block * rows + r] = 128 * sum;
                groupSum = MathF.FusedMultiplyAdd(scale, sum, groupSum);
            }
            if (sums != null) sums[group * rows + r] = groupSum;
        }
    }
}
