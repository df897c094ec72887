using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// int8 activation rows for one <see cref="DotWeight"/>: float rows quantized with an <see cref="ActivationBlocking"/>
/// (<see cref="Quantize"/>), or codes made elsewhere with one scale (<see cref="FromCodes"/>, static W8A8):
/// per block an absmax scale (max |x| / 127) and codes round(x / scale) with ties to even, written in the weight's
/// padded group layout and interleaved by row in tiles of <see cref="TileRows"/> (see <see cref="DotArgs"/>); per
/// block the correction 128 * sum(codes) (qint8 weights) and per group the dequantized sum, sum(scale * sum(codes))
/// (the shift term of 2/4-bit weights, computed from the same quantized activations). Holds scratch memory
/// (see ScratchMemory): dispose it.
/// </summary>
internal sealed unsafe class DotActivations : IDotActivations
{
    private readonly ScratchMemory.Lease _memory;

    private DotActivations(int rows, DotWeight weight, ActivationBlocking blocking, int tileRows)
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
    }

    /// <summary>Inputs (rows x K) from which <see cref="Quantize"/> spreads the rows over the kernel threads: about
    /// 20 us of quantizing on one core, well above a worker's wake-up. Below it the caller quantizes alone.</summary>
    internal const long ParallelInputs = 32 * 1024;

    /// <summary>Activation tiles per chunk of the parallel quantization (whole tiles, so that no two threads write
    /// the interleaved bytes of one tile).</summary>
    private const int TilesPerChunk = 8;

    /// <summary>Quantizes <paramref name="rows"/> float rows of K (the dynamic modes). Each row is quantized on its
    /// own, so the result is the same on any number of threads; from <see cref="ParallelInputs"/> inputs the rows are
    /// spread over the kernel threads in runs of whole tiles (at 800 x 1536, MiniLM's FFN output at batch 32, the
    /// quantization was a quarter of the call on the caller's thread alone).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static DotActivations Quantize(float* source, int rows, DotWeight weight, ActivationBlocking blocking,
        int tileRows)
    {
        var x = new DotActivations(rows, weight, blocking, tileRows);
        try
        {
            // One chunk or a small input: the caller alone, without a job to allocate (the decode path).
            if ((long)rows * weight.K < ParallelInputs || x.Tiles <= TilesPerChunk)
                x.QuantizeRows(source, 0, rows, weight, blocking);
            else
                CpuParallel.Run(new QuantizeJob(x, source, weight, blocking),
                    (x.Tiles + TilesPerChunk - 1) / TilesPerChunk);
        }
        catch
        {
            x.Dispose();
            throw;
        }
        return x;
    }

    /// <summary>Quantizes rows [<paramref name="first"/>, <paramref name="end"/>).</summary>
    private void QuantizeRows(float* source, int first, int end, DotWeight weight, ActivationBlocking blocking)
    {
        for (int m = first; m < end; m++) QuantizeRow(source + (long)m * weight.K, m, weight, blocking);
    }

    /// <summary>Chunk i quantizes the rows of tiles [i, i + 1) x <see cref="TilesPerChunk"/>.</summary>
    private sealed class QuantizeJob(DotActivations x, float* source, DotWeight weight, ActivationBlocking blocking)
        : CpuJob
    {
        public override void Run(int chunk)
        {
            int rowsPerChunk = TilesPerChunk * x.TileRows, first = chunk * rowsPerChunk;
            x.QuantizeRows(source, first, Math.Min(x.Rows, first + rowsPerChunk), weight, blocking);
        }
    }

    /// <summary>Lays out int8 codes quantized elsewhere with one scale for every row (static W8A8) for a qint8
    /// weight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static DotActivations FromCodes(sbyte* codes, int rows, DotWeight weight, float scale, int tileRows)
    {
        var x = new DotActivations(rows, weight, new ActivationBlocking(weight.K, weight.K), tileRows);
        for (int m = 0; m < rows; m++)
        {
            int tile = m / tileRows, r = m % tileRows;
            sbyte* source = codes + (long)m * weight.K;
            sbyte* row = x.Codes + (long)tile * tileRows * x.PaddedK + r * 4;
            int sum = 0;
            for (int k = 0; k < weight.K; k++)
            {
                row[(long)(k >> 2) * 4 * tileRows + (k & 3)] = source[k];
                sum += source[k];
            }
            x.Scales[tile * tileRows + r] = scale;
            x.Corrections[tile * tileRows + r] = 128 * sum;
        }
        return x;
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
        int* lanes = stackalloc int[8]; // Encode's staging of one vector of quads (tiles of several rows)
        for (int group = 0; group < Groups; group++)
        {
            float groupSum = 0;
            for (int b = 0; b < BlocksPerGroup; b++)
            {
                int start = b * length, count = Math.Min(length, g - start);
                float* p = x + (long)group * g + start;
                float absmax = AbsMax(p, count);
                // A NaN or infinity makes the block's scale NaN, so the row's results are NaN as in float math.
                float scale = float.IsFinite(absmax) ? absmax / 127f : float.NaN;
                int sum = scale != 0 && float.IsFinite(scale)
                    ? Encode(p, count, scale, codes + r * 4, rows, group * weight.PaddedGroup + start, lanes)
                    : 0;
                int block = group * BlocksPerGroup + b;
                scales[block * rows + r] = scale;
                if (corrections != null) corrections[block * rows + r] = 128 * sum;
                groupSum = MathF.FusedMultiplyAdd(scale, sum, groupSum);
            }
            if (sums != null) sums[group * rows + r] = groupSum;
        }
    }

    /// <summary>max |p[i]| over <paramref name="count"/> values (NaN when one is NaN).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float AbsMax(float* p, int count)
    {
        int i = 0;
        float absmax = 0;
        if (Vector256.IsHardwareAccelerated && count >= 8)
        {
            Vector256<float> max = Vector256<float>.Zero, nan = Vector256<float>.Zero;
            for (; i + 8 <= count; i += 8)
            {
                Vector256<float> v = Vector256.Abs(Vector256.Load(p + i));
                max = Vector256.Max(max, v);
                nan |= ~Vector256.Equals(v, v);
            }
            if (nan != Vector256<float>.Zero) return float.NaN;
            // Lanes folded pairwise (max is exact in any order): three maxima instead of eight extractions.
            Vector128<float> half = Vector128.Max(max.GetLower(), max.GetUpper());
            half = Vector128.Max(half, Vector128.Shuffle(half, Vector128.Create(2, 3, 0, 1)));
            half = Vector128.Max(half, Vector128.Shuffle(half, Vector128.Create(1, 0, 3, 2)));
            absmax = half.ToScalar();
        }
        for (; i < count; i++) absmax = Math.Max(absmax, Math.Abs(p[i]));
        return absmax;
    }

    /// <summary>
    /// Writes round(p[i] / scale) (ties to even, clamped to [-127, 127]) for inputs [padded, padded + count) of one
    /// row into its interleaved tile (<paramref name="row"/> points at the row's first quad; quads are 4 * rows bytes
    /// apart) and returns their sum. <paramref name="padded"/> is a multiple of 4; <paramref name="lanes"/> is room for
    /// eight ints.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Encode(float* p, int count, float scale, sbyte* row, int rows, int padded, int* lanes)
    {
        int i = 0, sum = 0;
        sbyte* quads = row + (long)(padded >> 2) * 4 * rows;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> s = Vector256.Create(scale);
            Vector256<int> low = Vector256.Create(-127), high = Vector256.Create(127), total = Vector256<int>.Zero;
            for (; i + 32 <= count; i += 32)
            {
                Vector256<int> c0 = Code(p + i, s, low, high), c1 = Code(p + i + 8, s, low, high);
                Vector256<int> c2 = Code(p + i + 16, s, low, high), c3 = Code(p + i + 24, s, low, high);
                total += (c0 + c1) + (c2 + c3);
                Vector256<int> bytes = Vector256.Narrow(Vector256.Narrow(c0, c1), Vector256.Narrow(c2, c3)).AsInt32();
                if (rows == 1)
                {
                    bytes.Store((int*)(quads + i));
                }
                else
                {
                    // Quads go to every rows-th int of the tile: one store of the vector, then eight int moves.
                    bytes.Store(lanes);
                    int* target = (int*)(quads + (long)(i >> 2) * 4 * rows);
                    for (int q = 0; q < 8; q++) target[q * rows] = lanes[q];
                }
            }
            sum = Vector256.Sum(total);
        }
        for (; i < count; i++)
        {
            int code = (int)Math.Clamp(MathF.Round(p[i] / scale), -127f, 127f);
            quads[(long)(i >> 2) * 4 * rows + (i & 3)] = (sbyte)code;
            sum += code;
        }
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Code(float* p, Vector256<float> scale, Vector256<int> low, Vector256<int> high) =>
        Vector256.Min(Vector256.Max(Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(p) / scale)), low), high);
}
