using System.Runtime.CompilerServices;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// The float32 activations of one float GEMM call in the weight's padded input order (each group padded to
/// <see cref="DotWeight.PaddedGroup"/> with zeros, so padded weights, which decode to -shift, add nothing). Rows whose
/// groups need no padding are used in place. Holds scratch memory when it copies: dispose it.
/// </summary>
internal sealed unsafe class FloatRows : IDisposable
{
    private readonly ScratchMemory.Lease? _memory;

    /// <param name="source">Rows x K float32 values.</param>
    /// <param name="rows">Activation rows.</param>
    /// <param name="weight">The weight the rows are multiplied with.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public FloatRows(float* source, int rows, DotWeight weight)
    {
        Rows = rows;
        int groupLength = weight.GroupLength, padded = weight.PaddedGroup, groups = weight.Groups;
        if (padded == groupLength)
        {
            Data = source;
            Stride = weight.K;
            return;
        }
        Stride = weight.PaddedK;
        _memory = ScratchMemory.Rent((long)rows * Stride * sizeof(float), clear: false);
        Data = (float*)_memory.Value.Pointer;
        for (int m = 0; m < rows; m++)
        {
            for (int g = 0; g < groups; g++)
            {
                float* target = Data + (long)m * Stride + (long)g * padded;
                new ReadOnlySpan<float>(source + (long)m * weight.K + (long)g * groupLength, groupLength)
                    .CopyTo(new Span<float>(target, groupLength));
                new Span<float>(target + groupLength, padded - groupLength).Clear();
            }
        }
    }

    public int Rows { get; }

    /// <summary>Row 0; rows are <see cref="Stride"/> floats apart.</summary>
    public float* Data { get; }

    /// <summary>Floats between rows.</summary>
    public int Stride { get; }

    public void Dispose() => _memory?.Dispose();
}
