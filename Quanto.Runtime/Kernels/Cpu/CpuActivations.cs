using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Quanto.Kernels.Cpu;

/// <summary>
/// Float activations laid out for one weight: each row copied into the weight's padded group layout (zeros in the
/// padding, so padded codes add nothing), rows padded with zeros to a multiple of <see cref="RowTile"/> when the GEMM
/// micro-kernels run, and (affine formats) the sum of each row's group, for the shift term: sum_k (q*s - t) x_k =
/// s * sum_k q x_k - t * sum_k x_k. Holds scratch memory (see ScratchMemory): dispose it.
/// </summary>
internal readonly unsafe struct CpuActivations : IDisposable
{
    /// <summary>Rows per GEMM micro-kernel tile; row counts are padded to a multiple of this.</summary>
    public const int RowTile = 4;

    private readonly ScratchMemory.Lease _memory;

    private CpuActivations(ScratchMemory.Lease memory, float* x, float* groupSums, int rows, int paddedRows, int stride,
        int groups)
    {
        _memory = memory;
        X = x;
        GroupSums = groupSums;
        Rows = rows;
        PaddedRows = paddedRows;
        Stride = stride;
        Groups = groups;
    }

    /// <summary>Padded rows, <see cref="Stride"/> floats apart.</summary>
    public float* X { get; }

    /// <summary>Per row and group, the sum of the activations (affine formats only, else null).</summary>
    public float* GroupSums { get; }

    /// <summary>Real rows (M).</summary>
    public int Rows { get; }

    /// <summary>Rows allocated: M rounded up to <see cref="RowTile"/>.</summary>
    public int PaddedRows { get; }

    /// <summary>Floats between rows (the weight's padded K).</summary>
    public int Stride { get; }

    /// <summary>Groups per row.</summary>
    public int Groups { get; }

    /// <summary>Copies <paramref name="rows"/> rows of K floats into the layout of <paramref name="weight"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static CpuActivations Create(float* source, int rows, CpuPreparedWeight weight)
    {
        // Only the GEMM (RowTile rows and more) reads padded rows; a GEMV needs exactly its rows.
        int paddedRows = rows < CpuKernelDispatch.GemmMinRows ? rows : (rows + RowTile - 1) / RowTile * RowTile;
        int stride = weight.PaddedK;
        long bytes = (long)paddedRows * stride * sizeof(float);
        long sumBytes = weight.Format.IsAffine() ? (long)rows * weight.Groups * sizeof(float) : 0;
        ScratchMemory.Lease memory = ScratchMemory.Rent(bytes + sumBytes, clear: false);
        float* x = (float*)memory.Pointer;
        NativeMemory.Clear(x, (nuint)bytes); // the padding must be zero; the sums are all written
        int groups = weight.Groups;
        int g = weight.GroupSize;
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < groups; j++)
            {
                Buffer.MemoryCopy(source + (long)r * weight.K + (long)j * g, x + (long)r * stride + (long)j * weight.PaddedGroup,
                    g * sizeof(float), g * sizeof(float));
            }
        }
        float* sums = null;
        if (weight.Format.IsAffine())
        {
            sums = (float*)((byte*)x + bytes);
            for (int r = 0; r < rows; r++)
            {
                for (int j = 0; j < groups; j++)
                {
                    // Summed in double: the shift term subtracts it, so its rounding error should stay far below
                    // the dot product's.
                    float* p = source + (long)r * weight.K + (long)j * g;
                    double sum = 0;
                    for (int k = 0; k < g; k++) sum += p[k];
                    sums[r * groups + j] = (float)sum;
                }
            }
        }
        return new CpuActivations(memory, x, sums, rows, paddedRows, stride, groups);
    }

    public void Dispose() => _memory.Dispose();
}
