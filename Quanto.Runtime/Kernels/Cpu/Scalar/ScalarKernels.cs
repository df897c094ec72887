using Quanto.Quantization;

namespace Quanto.Kernels.Cpu.Scalar;

/// <summary>
/// The portable scalar path: the same blocked layout and per-group s * (q · x) - t * sum(x) as the SIMD paths, one
/// weight at a time. float8 codes decode through the codec's table (independent of the SIMD paths' bit trick).
/// Used for any row count (no separate GEMM): on CPUs without SIMD, speed is not the goal.
/// </summary>
internal static unsafe class ScalarKernels
{
    public static void Run(CpuPreparedWeight w, CpuActivations x, int n0, int n1, float* y, float* bias)
    {
        int groups = w.Groups;
        int blocks = w.BlocksPerGroup;
        int groupBytes = blocks * w.BlockBytes;
        Span<float> codes = stackalloc float[w.BlockWeights];
        ReadOnlySpan<float> table = w.Format switch
        {
            CpuWeightFormat.Fp8E4M3Fn => Float8.DecodeTable(Float8Format.E4M3Fn),
            CpuWeightFormat.Fp8E5M2 => Float8.DecodeTable(Float8Format.E5M2),
            CpuWeightFormat.Fp8E4M3Fnuz => Float8.DecodeTable(Float8Format.E4M3Fnuz),
            _ => default,
        };
        for (int n = n0; n < n1; n++)
        {
            byte* row = w.Codes + (long)n * w.RowBytes;
            for (int r = 0; r < x.Rows; r++)
            {
                float* xr = x.X + (long)r * x.Stride;
                float total = 0;
                for (int g = 0; g < groups; g++)
                {
                    float dot = 0;
                    for (int b = 0; b < blocks; b++)
                    {
                        Decode(w.Format, row + (long)g * groupBytes + b * w.BlockBytes, table, codes);
                        float* xp = xr + (long)g * w.PaddedGroup + b * w.BlockWeights;
                        for (int i = 0; i < codes.Length; i++) dot += codes[i] * xp[i];
                    }
                    long index = (long)n * groups + g;
                    total += dot * w.Scales[index];
                    if (x.GroupSums != null) total -= w.Shifts[index] * x.GroupSums[r * groups + g];
                }
                y[(long)r * w.N + n] = bias == null ? total : total + bias[n];
            }
        }
    }

    private static void Decode(CpuWeightFormat format, byte* block, ReadOnlySpan<float> table, Span<float> codes)
    {
        switch (format)
        {
            case CpuWeightFormat.Int8:
                for (int i = 0; i < 64; i++) codes[i] = (sbyte)block[i];
                break;
            case CpuWeightFormat.Int4:
                for (int i = 0; i < 16; i++)
                {
                    codes[i] = block[i] & 15;
                    codes[i + 16] = block[i] >> 4;
                }
                break;
            case CpuWeightFormat.Int2:
                for (int i = 0; i < 16; i++)
                {
                    for (int plane = 0; plane < 4; plane++) codes[i + 16 * plane] = (block[i] >> (2 * plane)) & 3;
                }
                break;
            default:
                for (int i = 0; i < 64; i++) codes[i] = table[block[i]];
                break;
        }
    }
}
