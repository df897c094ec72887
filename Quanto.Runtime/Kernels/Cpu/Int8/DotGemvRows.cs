using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// The float32 activations of one <see cref="DotGemv"/> call: each row in the weight's padded input order (groups
/// padded to <see cref="DotWeight.PaddedGroup"/> with zeros), every input multiplied by the power of two that undoes
/// the bit position its code is decoded at (<see cref="Factor"/>; qint4 only), and for 2/4-bit weights the sum of
/// each group's original activations (for the shift term). Scratch memory: dispose it.
/// </summary>
internal sealed unsafe class DotGemvRows : IDisposable
{
    private readonly ScratchMemory.Lease _memory;

    /// <param name="source">Rows x K float32 values.</param>
    /// <param name="rows">Activation rows.</param>
    /// <param name="weight">The weight the rows are multiplied with.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public DotGemvRows(float* source, int rows, DotWeight weight)
    {
        Rows = rows;
        Groups = weight.Groups;
        Stride = weight.PaddedK;
        int groupLength = weight.GroupLength, padded = weight.PaddedGroup, groups = weight.Groups;
        bool sums = weight.Shifts != null;
        long bytes = (long)rows * Stride * sizeof(float);
        _memory = ScratchMemory.Rent(bytes + (sums ? (long)rows * groups * sizeof(float) : 0), clear: false);
        Data = (float*)_memory.Pointer;
        GroupSums = sums ? (float*)((byte*)Data + bytes) : null;
        bool scaled = weight.Format == DotFormat.Int4;
        // Factors of inputs 0..7 of a unit, twice (a zmm holds 16 inputs: two units).
        Vector512<float> factors = Vector512.Create(Factor(0), Factor(1), Factor(2), Factor(3), Factor(4), Factor(5),
            Factor(6), Factor(7), Factor(0), Factor(1), Factor(2), Factor(3), Factor(4), Factor(5), Factor(6), Factor(7));
        for (int m = 0; m < rows; m++)
        {
            for (int g = 0; g < groups; g++)
            {
                float* from = source + (long)m * weight.K + (long)g * groupLength;
                float* to = Data + (long)m * Stride + (long)g * padded;
                Vector512<double> sum0 = Vector512<double>.Zero, sum1 = Vector512<double>.Zero;
                int k = 0;
                for (; k + 16 <= groupLength; k += 16)
                {
                    Vector512<float> v = Vector512.Load(from + k);
                    (Vector512<double> low, Vector512<double> high) = Vector512.Widen(v);
                    sum0 += low;
                    sum1 += high;
                    (scaled ? v * factors : v).Store(to + k);
                }
                double sum = Vector512.Sum(sum0 + sum1);
                for (; k < groupLength; k++)
                {
                    sum += from[k];
                    to[k] = scaled ? from[k] * Factor(k & 7) : from[k];
                }
                new Span<float>(to + groupLength, padded - groupLength).Clear();
                // Summed in double: the shift term subtracts it, so its rounding error stays far below the dot's.
                if (sums) GroupSums[(long)m * groups + g] = (float)sum;
            }
        }
    }

    /// <summary>
    /// The factor of input <paramref name="i"/> (0..7) of a qint4 unit: its code is decoded in place, at bit 8i
    /// (i &lt; 4) or 8(i - 4) + 4 of its column's dword, as code * 2^bit, except input 7 (shifted down to bit 0).
    /// </summary>
    public static float Factor(int i) => i switch
    {
        0 or 7 => 1f,
        < 4 => MathF.ScaleB(1f, -8 * i),
        _ => MathF.ScaleB(1f, -8 * (i - 4) - 4),
    };

    public int Rows { get; }

    /// <summary>Groups per row.</summary>
    public int Groups { get; }

    /// <summary>Row 0; rows are <see cref="Stride"/> floats apart.</summary>
    public float* Data { get; }

    /// <summary>Floats between rows (the weight's PaddedK).</summary>
    public int Stride { get; }

    /// <summary>Sum of each (row, group)'s activations, row-major; null for qint8.</summary>
    public float* GroupSums { get; }

    public void Dispose() => _memory.Dispose();
}
