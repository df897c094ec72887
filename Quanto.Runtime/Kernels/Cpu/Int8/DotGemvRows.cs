using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// The float32 activations of one <see cref="DotGemv"/> call: each row in the weight's padded input order (groups
/// padded to <see cref="DotWeight.PaddedGroup"/> with zeros), every input multiplied by the power of two that undoes
/// the bit position its code is decoded at (<see cref="Factor"/>; qint4 and qint2), and for 2/4-bit weights the sum
/// of each group's original activations (for the shift term). Scratch memory: dispose it.
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
        DotFormat format = weight.Format;
        int groupLength = weight.GroupLength, padded = weight.PaddedGroup, groups = weight.Groups;
        bool sums = weight.Shifts != null;
        long bytes = (long)rows * Stride * sizeof(float);
        _memory = ScratchMemory.Rent(bytes + (sums ? (long)rows * groups * sizeof(float) : 0), clear: false);
        Data = (float*)_memory.Pointer;
        GroupSums = sums ? (float*)((byte*)Data + bytes) : null;
        // Factors of inputs 0..15 of a unit (qint2's; qint4's repeat every 8, qint8's are all 1). Groups start at a
        // unit boundary, so input k of a group has the factor of k mod 16.
        Vector256<float> low = Vector256.Create(Factor(format, 0), Factor(format, 1), Factor(format, 2),
            Factor(format, 3), Factor(format, 4), Factor(format, 5), Factor(format, 6), Factor(format, 7));
        Vector256<float> high = Vector256.Create(Factor(format, 8), Factor(format, 9), Factor(format, 10),
            Factor(format, 11), Factor(format, 12), Factor(format, 13), Factor(format, 14), Factor(format, 15));
        for (int m = 0; m < rows; m++)
        {
            for (int g = 0; g < groups; g++)
            {
                float* from = source + (long)m * weight.K + (long)g * groupLength;
                float* to = Data + (long)m * Stride + (long)g * padded;
                Vector256<double> sum0 = Vector256<double>.Zero, sum1 = Vector256<double>.Zero;
                int k = 0;
                for (; k + 16 <= groupLength; k += 16)
                {
                    Vector256<float> v0 = Vector256.Load(from + k), v1 = Vector256.Load(from + k + 8);
                    (Vector256<double> a, Vector256<double> b) = Vector256.Widen(v0);
                    (Vector256<double> c, Vector256<double> d) = Vector256.Widen(v1);
                    sum0 += a + c;
                    sum1 += b + d;
                    (v0 * low).Store(to + k);
                    (v1 * high).Store(to + k + 8);
                }
                double sum = Vector256.Sum(sum0 + sum1);
                for (; k < groupLength; k++)
                {
                    sum += from[k];
                    to[k] = from[k] * Factor(format, k & 15);
                }
                new Span<float>(to + groupLength, padded - groupLength).Clear();
                // Summed in double: the shift term subtracts it, so its rounding error stays far below the dot's.
                if (sums) GroupSums[(long)m * groups + g] = (float)sum;
            }
        }
    }

    /// <summary>
    /// The bit of its column's dword at which the code of input <paramref name="i"/> of a unit lies (see
    /// <see cref="DotFormat"/>): qint4 input i &lt; 4 at 8i, input 4 + i at 8i + 4; qint2 input 4c + i at 8i + 2c;
    /// qint8 0 (its kernels move every byte to the top and fold the one 2^-24 into the scale).
    /// </summary>
    public static int CodeBit(DotFormat format, int i) => format switch
    {
        DotFormat.Int4 => 8 * (i & 3) + 4 * ((i >> 2) & 1),
        DotFormat.Int2 => 8 * (i & 3) + 2 * ((i >> 2) & 3),
        _ => 0,
    };

    /// <summary>
    /// The factor of input <paramref name="i"/> of a unit: the kernels decode its code in place as code * 2^bit
    /// (<see cref="CodeBit"/>), so the activation is pre-multiplied by 2^-bit; the top code of a dword (qint4 input
    /// 7, qint2 input 15) is shifted down to bit 0 instead, so the int32 stays non-negative: factor 1.
    /// </summary>
    public static float Factor(DotFormat format, int i) => format switch
    {
        DotFormat.Int4 when (i & 7) == 7 => 1f,
        DotFormat.Int2 when (i & 15) == 15 => 1f,
        DotFormat.Int8 => 1f,
        _ => MathF.ScaleB(1f, -CodeBit(format, i)),
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
