using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Tests.Kernels.Cpu;

/// <summary>A weight format under test: qtype, requested group size, shift mode.</summary>
public sealed record CpuWeightCase(QType QType, int Group = 128, ShiftMode Shift = ShiftMode.Float)
{
    public override string ToString() =>
        $"{QType.QuantoName()}{(QType.Info().IsPacked ? $"-g{Group}" : "")}{(Shift == ShiftMode.ZeroPoint ? "-zp" : "")}";
}

/// <summary>Random weights, activations and the independent references the CPU kernel tests compare against.</summary>
internal static class CpuKernelTestData
{
    /// <summary>
    /// A float weight with a wide spread of magnitudes per row (so float8 subnormals and large codes occur), a
    /// non-zero mean (so affine shifts matter), quantized by the library's quantizer.
    /// </summary>
    public static QuantizedWeight Weight(CpuWeightCase c, int n, int k, int seed)
    {
        int group = GroupSize.Resolve(k, c.Group);
        if (c.QType.Info().IsPacked && group % 8 != 0) return RandomPacked(c, n, k, group, seed);
        Tensor w;
        using (NewDisposeScope())
        {
            var generator = new TorchSharp.torch.Generator((ulong)seed);
            w = randn([n, k], generator: generator).mul(exp(randn([n, k], generator: generator).mul(1.5)))
                .add(randn([n, 1], generator: generator).mul(0.3)).MoveToOuterDisposeScope();
        }
        using (w) return WeightQuantizer.Quantize(w, c.QType, c.Group, shiftMode: c.Shift);
    }

    /// <summary>
    /// Random codes, scales and shifts built directly: the quantizer rejects group sizes that are not multiples of 8,
    /// which the per-channel fallback produces for such K (reported upstream); the kernels must still run them.
    /// </summary>
    private static QuantizedWeight RandomPacked(CpuWeightCase c, int n, int k, int group, int seed)
    {
        QTypeInfo info = c.QType.Info();
        var random = new Random(seed);
        int groups = n * k / group;
        var codes = new byte[groups * group];
        for (int i = 0; i < codes.Length; i++) codes[i] = (byte)random.Next(info.MaxCode + 1);
        var packed = new byte[Packing.PackedRows(groups, info.Bits) * group];
        Packing.Pack(codes, groups, group, info.Bits, packed);
        float[] scales = Enumerable.Range(0, groups).Select(_ => 0.01f + (float)random.NextDouble()).ToArray();
        Tensor shift = c.Shift == ShiftMode.ZeroPoint
            ? tensor(Enumerable.Range(0, groups).Select(_ => (byte)random.Next(info.MaxCode + 1)).ToArray(), [groups, 1])
            : tensor(Enumerable.Range(0, groups).Select(_ => (float)random.NextDouble() * 2).ToArray(), [groups, 1]);
        return new WeightQBitsTensor(c.QType, [n, k], group,
            tensor(packed, [Packing.PackedRows(groups, info.Bits), group]), tensor(scales, [groups, 1]), shift);
    }

    public static Tensor Input(int m, int k, int seed)
    {
        var generator = new TorchSharp.torch.Generator((ulong)seed + 1000);
        return randn([m, k], generator: generator);
    }

    public static Tensor Bias(int n, int seed)
    {
        var generator = new TorchSharp.torch.Generator((ulong)seed + 2000);
        return randn([n], generator: generator);
    }

    /// <summary>Plain C# in double precision over the dequantized weight: y = x · Wᵀ + b.</summary>
    public static double[] ScalarReference(Tensor x, Tensor weight, Tensor? bias)
    {
        int m = (int)x.shape[0], k = (int)x.shape[1], n = (int)weight.shape[0];
        float[] xs = x.contiguous().data<float>().ToArray();
        float[] ws = weight.to(ScalarType.Float32).contiguous().data<float>().ToArray();
        float[]? bs = bias?.contiguous().data<float>().ToArray();
        var y = new double[m * n];
        for (int r = 0; r < m; r++)
        {
            for (int c = 0; c < n; c++)
            {
                double sum = bs?[c] ?? 0;
                for (int i = 0; i < k; i++) sum += (double)xs[r * k + i] * ws[c * k + i];
                y[r * n + c] = sum;
            }
        }
        return y;
    }

    /// <summary>max |actual - expected| / max |expected|.</summary>
    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected)
    {
        double maxErr = 0, maxRef = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            maxErr = Math.Max(maxErr, Math.Abs(actual[i] - expected[i]));
            maxRef = Math.Max(maxRef, Math.Abs(expected[i]));
        }
        return maxErr / Math.Max(maxRef, double.Epsilon);
    }

    public static double[] ToDoubles(Tensor t) =>
        t.to(ScalarType.Float64).contiguous().data<double>().ToArray();
}
