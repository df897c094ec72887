using System.Runtime.CompilerServices;
using Quanto.Kernels.Cpu.Jit;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// One bf16 GEMM over the thread pool: chunk i is block i of four panels (64 output columns). Per run of about
/// <see cref="BlockInputs"/> inputs the block is decoded once into bf16 pairs (<see cref="Bf16Panels"/>, 32 KB:
/// stays in L1 while every row tile reads it; 256 beat 512 and 1024 inputs at m = 16 and 128, 1 thread), then the micro-kernel runs it against every activation row, six rows per tile, adding into float32
/// accumulators for all rows; at the end bias, then y (float32, or bfloat16 rounded to nearest even).
/// </summary>
internal sealed unsafe class Bf16GemmJob(DotWeight weight, Bf16Rows x, void* y, bool bf16Output, float* bias)
    : CpuJob
{
    /// <summary>Inputs decoded per block at most (a whole group at least).</summary>
    public const int BlockInputs = 256;

    private readonly int _unitsPerBlock = weight.Format.IsSigned()
        ? Math.Min(BlockInputs / weight.Format.UnitK(), weight.Groups * weight.UnitsPerGroup)
        : Math.Max(1, BlockInputs / weight.PaddedGroup) * weight.UnitsPerGroup;

    /// <summary>Chunks to run.</summary>
    public int Blocks { get; } = (weight.Panels + Bf16GemmAssembler.MaxPanels - 1) / Bf16GemmAssembler.MaxPanels;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Run(int chunk)
    {
        int panel0 = chunk * Bf16GemmAssembler.MaxPanels;
        int panels = Math.Min(Bf16GemmAssembler.MaxPanels, weight.Panels - panel0);
        bool shifted = !weight.Format.IsSigned();
        int rows = x.Rows, tileRows = Bf16GemmAssembler.MaxRows, whole = rows / tileRows, rest = rows % tileRows;
        var kernel = Bf16GemmAssembler.Get(tileRows, panels, shifted);
        var restKernel = rest == 0 ? null : Bf16GemmAssembler.Get(rest, panels, shifted);
        int pairsPerUnit = weight.Format.PairsPerUnit();
        long weightBytes = (long)_unitsPerBlock * pairsPerUnit * panels * 64;
        int maxGroups = Bf16Panels.Grouping(weight, _unitsPerBlock).Groups;
        long scaleBytes = (long)maxGroups * panels * DotFormats.PanelColumns * sizeof(float);
        long accBytes = (long)rows * Bf16GemmArgs.AccRowFloats * sizeof(float);
        using ScratchMemory.Lease lease = ScratchMemory.Rent(weightBytes + 2 * scaleBytes + accBytes, clear: false);
        var decoded = (ushort*)lease.Pointer;
        var scales = (float*)((byte*)decoded + weightBytes);
        float* shifts = shifted ? scales + scaleBytes / sizeof(float) : null;
        var acc = (float*)((byte*)scales + 2 * scaleBytes);
        new Span<float>(acc, rows * Bf16GemmArgs.AccRowFloats).Clear();
        int totalUnits = weight.Groups * weight.UnitsPerGroup;
        for (int unit0 = 0; unit0 < totalUnits; unit0 += _unitsPerBlock)
        {
            int units = Math.Min(_unitsPerBlock, totalUnits - unit0);
            Bf16Panels.Decode(weight, panel0, panels, unit0, units, decoded, scales, shifts);
            (int groups, int pairsPerGroup) = Bf16Panels.Grouping(weight, units);
            var args = new Bf16GemmArgs
            {
                Weights = decoded, Scales = scales, Shifts = shifts,
                X = x.Data + (long)unit0 * weight.Format.UnitK(), XStride = x.Stride,
                XSums = shifted ? x.Sums + (long)unit0 / weight.UnitsPerGroup * rows : null,
                XSumsGroupStride = (long)rows * sizeof(float), Acc = acc, Groups = groups,
                PairsPerGroup = pairsPerGroup, Tiles = whole,
            };
            if (whole > 0) kernel(&args);
            if (restKernel == null) continue;
            args.X = (ushort*)((byte*)args.X + whole * tileRows * x.Stride);
            if (shifted) args.XSums += whole * tileRows;
            args.Acc += (long)whole * tileRows * Bf16GemmArgs.AccRowFloats;
            args.Tiles = 1;
            restKernel(&args);
        }
        Store(acc, panel0);
    }

    private void Store(float* acc, int panel0)
    {
        int col0 = panel0 * DotFormats.PanelColumns;
        int cols = Math.Min(Bf16GemmAssembler.MaxPanels * DotFormats.PanelColumns, weight.N - col0);
        for (int r = 0; r < x.Rows; r++)
        {
            float* row = acc + (long)r * Bf16GemmArgs.AccRowFloats;
            if (bias != null)
            {
                for (int c = 0; c < cols; c++) row[c] += bias[col0 + c];
            }
            long at = (long)r * weight.N + col0;
            if (bf16Output) Bf16Rows.Round(row, (ushort*)y + at, cols);
            else new ReadOnlySpan<float>(row, cols).CopyTo(new Span<float>((float*)y + at, cols));
        }
    }
}
