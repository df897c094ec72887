using System.Runtime.Intrinsics;

namespace Quanto.Kernels.Cpu.Simd128;

/// <summary>
/// Few-row products (GEMV): each weight row is decoded straight into FMAs against every activation row while it is
/// in L1, so the weight streams from memory once. Per group: s * (q · x) - t * sum(x), four accumulator chains.
/// Block sizes come from the decoder as JIT-time constants, and the walk is by pointer increments.
/// </summary>
internal static unsafe class Gemv128
{
    public static void Run<TD>(CpuPreparedWeight w, CpuActivations x, int n0, int n1, float* y, float* bias)
        where TD : struct, IDecoder128
    {
        if (TD.BlockBytes != w.BlockBytes || TD.BlockWeights != w.BlockWeights)
            throw new InvalidOperationException($"Kernel block size does not match the {w.Format} layout.");
        int groups = w.Groups;
        long groupBytes = (long)w.BlocksPerGroup * TD.BlockBytes;
        bool affine = x.GroupSums != null;
        for (int n = n0; n < n1; n++)
        {
            for (int r = 0; r < x.Rows; r++)
            {
                byte* p = w.Codes + (long)n * w.RowBytes;
                float* xp = x.X + (long)r * x.Stride;
                float* scales = w.Scales + (long)n * groups;
                float* shifts = w.Shifts + (long)n * groups;
                float* sums = affine ? x.GroupSums + (long)r * groups : null;
                Vector128<float> total = Vector128<float>.Zero;
                float shiftTerm = 0;
                for (int g = 0; g < groups; g++)
                {
                    byte* end = p + groupBytes;
                    Vector128<float> a0 = default, a1 = default, a2 = default, a3 = default;
                    for (; p + 2 * TD.BlockBytes <= end; p += 2 * TD.BlockBytes, xp += 2 * TD.BlockWeights)
                    {
                        TD.Accumulate(p, xp, ref a0, ref a1);
                        TD.Accumulate(p + TD.BlockBytes, xp + TD.BlockWeights, ref a2, ref a3);
                    }
                    if (p < end)
                    {
                        TD.Accumulate(p, xp, ref a0, ref a1);
                        p += TD.BlockBytes;
                        xp += TD.BlockWeights;
                    }
                    total = Vector128.FusedMultiplyAdd((a0 + a1) + (a2 + a3), Vector128.Create(scales[g]), total);
                    if (affine) shiftTerm += shifts[g] * sums[g];
                }
                float result = Vector128.Sum(total) - shiftTerm;
                y[(long)r * w.N + n] = bias == null ? result : result + bias[n];
            }
        }
    }
}
