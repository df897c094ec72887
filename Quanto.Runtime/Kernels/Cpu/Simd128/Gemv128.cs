using System.Runtime.Intrinsics;

namespace Quanto.Kernels.Cpu.Simd128;

/// <summary>
/// Few-row products (GEMV): each weight row is decoded straight into FMAs against every activation row while it is
/// in L1, so the weight streams from memory once. Per group: s * (q · x) - t * sum(x), four accumulator chains.
/// </summary>
internal static unsafe class Gemv128
{
    public static void Run<TD>(CpuPreparedWeight w, CpuActivations x, int n0, int n1, float* y, float* bias)
        where TD : struct, IDecoder128
    {
        int groups = w.Groups;
        int blocks = w.BlocksPerGroup;
        int blockBytes = w.BlockBytes;
        int blockWeights = w.BlockWeights;
        int groupBytes = blocks * blockBytes;
        bool affine = x.GroupSums != null;
        for (int n = n0; n < n1; n++)
        {
            byte* row = w.Codes + (long)n * w.RowBytes;
            float* scales = w.Scales + (long)n * groups;
            float* shifts = w.Shifts + (long)n * groups;
            for (int r = 0; r < x.Rows; r++)
            {
                float* xr = x.X + (long)r * x.Stride;
                Vector128<float> total = Vector128<float>.Zero;
                float shiftTerm = 0;
                for (int g = 0; g < groups; g++)
                {
                    byte* p = row + (long)g * groupBytes;
                    float* xp = xr + (long)g * w.PaddedGroup;
                    Vector128<float> a0 = default, a1 = default, a2 = default, a3 = default;
                    int b = 0;
                    for (; b + 1 < blocks; b += 2)
                    {
                        TD.Accumulate(p, xp, ref a0, ref a1);
                        TD.Accumulate(p + blockBytes, xp + blockWeights, ref a2, ref a3);
                        p += 2 * blockBytes;
                        xp += 2 * blockWeights;
                    }
                    if (b < blocks) TD.Accumulate(p, xp, ref a0, ref a1);
                    total = Vector128.FusedMultiplyAdd((a0 + a1) + (a2 + a3), Vector128.Create(scales[g]), total);
                    if (affine) shiftTerm += shifts[g] * x.GroupSums[r * groups + g];
                }
                float result = Vector128.Sum(total) - shiftTerm;
                y[(long)r * w.N + n] = bias == null ? result : result + bias[n];
            }
        }
    }
}
