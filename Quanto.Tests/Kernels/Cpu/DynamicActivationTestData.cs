using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Cpu;

/// <summary>
/// The dynamic int8 activation rule, re-implemented here in plain C# as the tests' independent reference: per block
/// of a row (a weight group split into blocks of <c>block</c> inputs, the last one shorter), scale = max |x| / 127 in
/// float32 and codes round(x / scale) with ties to even, clamped to [-127, 127]; x̂ = code * scale.
/// </summary>
internal static class DynamicActivationTestData
{
    /// <summary>x̂ for x (rows, K): groups of <paramref name="group"/> inputs, blocks of <paramref name="block"/>.</summary>
    public static Tensor FakeQuantize(Tensor x, int group, int block)
    {
        int rows = (int)x.shape[0], k = (int)x.shape[1];
        float[] values = x.to(ScalarType.Float32).contiguous().data<float>().ToArray();
        var result = new float[values.Length];
        for (int r = 0; r < rows; r++)
        {
            for (int g0 = 0; g0 < k; g0 += group)
            {
                for (int b0 = g0; b0 < g0 + group; b0 += block)
                {
                    int end = Math.Min(b0 + block, g0 + group);
                    float absmax = 0;
                    for (int i = b0; i < end; i++) absmax = Math.Max(absmax, Math.Abs(values[r * k + i]));
                    float scale = absmax / 127f;
                    for (int i = b0; i < end; i++)
                    {
                        float code = scale == 0 ? 0 : Math.Clamp(MathF.Round(values[r * k + i] / scale), -127f, 127f);
                        result[r * k + i] = code * scale;
                    }
                }
            }
        }
        return tensor(result, [rows, k]);
    }

    /// <summary>The (group, block) the Int8 (<paramref name="perGroup"/> false) or Int8PerGroup mode gives a
    /// weight: per token for qint8, blocks of 32 (or the group) for 2/4-bit weights.</summary>
    public static (int Group, int Block) Blocking(QuantizedWeight weight, bool perGroup)
    {
        int k = (int)(weight.NumberOfElements / weight.Shape[0]);
        if (weight is WeightQBitsTensor bits) return (bits.GroupSize, perGroup ? bits.GroupSize : Math.Min(32, bits.GroupSize));
        return (k, k);
    }
}
