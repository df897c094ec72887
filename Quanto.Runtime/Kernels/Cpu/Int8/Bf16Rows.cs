using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Quanto.Kernels.Cpu.Int8;

/// <summary>
/// The activations of one bf16 GEMM call: rows of bfloat16 in the weight's padded input order (each group padded to
/// <see cref="DotWeight.PaddedGroup"/> with zeros), and for 2/4-bit weights per (group, row) the sum of the group's
/// bf16 values (the shift term). Float32 rows are rounded to nearest even, as libtorch's cast; bf16 rows whose
/// groups need no padding are used in place. Holds scratch memory when it copies: dispose it.
/// </summary>
internal sealed unsafe class Bf16Rows : IDisposable
{
    private readonly ScratchMemory.Lease? _memory;

    /// <param name="source">Rows x K values, Float32 or (<paramref name="bf16"/>) BFloat16 bits.</param>
    /// <param name="bf16">True when <paramref name="source"/> holds bfloat16.</param>
    /// <param name="rows">Activation rows.</param>
    /// <param name="weight">The weight the rows are multiplied with.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public Bf16Rows(void* source, bool bf16, int rows, DotWeight weight)
    {
        Rows = rows;
        int groupLength = weight.GroupLength, padded = weight.PaddedGroup, groups = weight.Groups;
        bool inPlace = bf16 && padded == groupLength;
        long dataBytes = inPlace ? 0 : ((long)rows * weight.PaddedK * 2 + 63) / 64 * 64;
        long sumBytes = weight.Format.IsSigned() ? 0 : (long)rows * groups * sizeof(float);
        if (dataBytes + sumBytes > 0) _memory = ScratchMemory.Rent(dataBytes + sumBytes, clear: false);
        byte* memory = _memory is { } lease ? (byte*)lease.Pointer : null;
        Data = inPlace ? (ushort*)source : (ushort*)memory;
        Stride = (long)(inPlace ? weight.K : weight.PaddedK) * 2;
        Sums = sumBytes == 0 ? null : (float*)(memory + dataBytes);
        for (int m = 0; m < rows; m++)
        {
            ushort* row = (ushort*)((byte*)Data + m * Stride);
            for (int g = 0; g < groups; g++)
            {
                ushort* target = row + (long)g * padded;
                if (!inPlace)
                {
                    long at = (long)m * weight.K + (long)g * groupLength;
                    if (bf16) new ReadOnlySpan<ushort>((ushort*)source + at, groupLength).CopyTo(new Span<ushort>(target, groupLength));
                    else Round((float*)source + at, target, groupLength);
                    new Span<ushort>(target + groupLength, padded - groupLength).Clear();
                }
                if (Sums != null) Sums[(long)g * rows + m] = Sum(target, groupLength);
            }
        }
    }

    public int Rows { get; }

    /// <summary>Row 0; rows are <see cref="Stride"/> bytes apart.</summary>
    public ushort* Data { get; }

    /// <summary>Bytes between rows.</summary>
    public long Stride { get; }

    /// <summary>Sum per (group, row), groups <see cref="Rows"/> floats apart (2/4-bit weights), else null.</summary>
    public float* Sums { get; }

    /// <summary>float32 -> bfloat16, round to nearest even, NaN kept quiet (as <see cref="Bf16Activations.Round"/>).</summary>
    internal static void Round(float* x, ushort* target, int count)
    {
        int i = 0;
        for (; i + 32 <= count; i += 32)
            Vector512.Narrow(Round16(Vector512.Load((uint*)(x + i))), Round16(Vector512.Load((uint*)(x + i + 16))))
                .Store(target + i);
        for (; i < count; i++) target[i] = (ushort)Bf16Activations.Round(x[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<uint> Round16(Vector512<uint> bits)
    {
        Vector512<uint> rounded = (bits + Vector512.Create(0x7FFFu) + ((bits >> 16) & Vector512<uint>.One)) >> 16;
        Vector512<uint> nan = Vector512.GreaterThan(bits & Vector512.Create(0x7FFFFFFFu), Vector512.Create(0x7F800000u));
        Vector512<uint> quiet = Vector512.Create(0x7FC0u) | ((bits >> 16) & Vector512.Create(0x8000u));
        return Vector512.ConditionalSelect(nan, quiet, rounded);
    }

    /// <summary>The float32 sum of <paramref name="count"/> bf16 values (16 lanes, then across).</summary>
    private static float Sum(ushort* x, int count)
    {
        Vector512<float> lanes = Vector512<float>.Zero;
        int i = 0;
        for (; i + 16 <= count; i += 16)
            lanes += (Vector512.WidenLower(Vector256.Load(x + i).ToVector512Unsafe()) << 16).AsSingle();
        float sum = Vector512.Sum(lanes);
        for (; i < count; i++) sum += Bf16Activations.Widen(x[i]);
        return sum;
    }

    public void Dispose() => _memory?.Dispose();
}
