using NUnit.Framework;
using Quanto.Quantization;
using Quanto.Tensors;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Quantization;

/// <summary>
/// GPTQ against a direct implementation written here: the paper's column-by-column form in double precision, with
/// an explicit inverse Hessian that loses one row and column per quantized input (optimal brain surgeon updates),
/// rather than the library's block-wise Cholesky form. Both must pick the same codes.
/// </summary>
public sealed class GptqTests
{
    internal const double Damping = 0.01;

    /// <summary>Inputs with correlated features (a random mix of a few sources plus noise), as real activations
    /// are: GPTQ then moves errors to where they cancel.</summary>
    internal static Tensor CorrelatedInputs(long rows, long features, long seed, long sourceCount = 4,
        double noiseLevel = 0.3)
    {
        using var generator = new Generator((ulong)seed);
        using Tensor sources = randn([rows, sourceCount], generator: generator);
        using Tensor mix = randn([sourceCount, features], generator: generator);
        using Tensor noise = randn([rows, features], generator: generator);
        return sources.mm(mix).add_(noise.mul_(noiseLevel));
    }

    internal static double[,] Hessian(Tensor x)
    {
        double[] v = Reference.Values(x);
        long n = x.shape[0], d = x.shape[1];
        var h = new double[d, d];
        for (long r = 0; r < n; r++)
        {
            for (long i = 0; i < d; i++)
            {
                for (long j = 0; j < d; j++) h[i, j] += v[r * d + i] * v[r * d + j];
            }
        }
        return h;
    }

    internal static double[,] Inverse(double[,] a)
    {
        int n = a.GetLength(0);
        var m = new double[n, 2 * n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++) m[i, j] = a[i, j];
            m[i, n + i] = 1;
        }
        for (int c = 0; c < n; c++)
        {
            int pivot = Enumerable.Range(c, n - c).MaxBy(r => Math.Abs(m[r, c]));
            for (int j = 0; j < 2 * n; j++) (m[c, j], m[pivot, j]) = (m[pivot, j], m[c, j]);
            double p = m[c, c];
            for (int j = 0; j < 2 * n; j++) m[c, j] /= p;
            for (int r = 0; r < n; r++)
            {
                if (r == c) continue;
                double f = m[r, c];
                for (int j = 0; j < 2 * n; j++) m[r, j] -= f * m[c, j];
            }
        }
        var inv = new double[n, n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++) inv[i, j] = m[i, n + j];
        }
        return inv;
    }

    /// <summary>
    /// The reference: columns in <paramref name="order"/>; for each, its group's float32 parameters (Max: scale
    /// (max - min) / maxCode, shift -min; int8: absmax / 127 per row) from the current weights when
    /// <paramref name="dynamicGroups"/> (else from the float weight); round; push the error onto the columns left,
    /// err * Hinv[j, k] / Hinv[j, j]; drop j from Hinv.
    /// </summary>
    internal static (int[,] Codes, double[,] Dequantized) ReferenceGptq(float[,] weight, double[,] hessian, int bits,
        int group, int[] order, bool dynamicGroups)
    {
        int rows = weight.GetLength(0), d = weight.GetLength(1);
        double mean = Enumerable.Range(0, d).Average(i => hessian[i, i]);
        var h = (double[,])hessian.Clone();
        for (int i = 0; i < d; i++) h[i, i] += Damping * mean;
        double[,] hinv = Inverse(h);
        var w = new double[rows, d];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < d; c++) w[r, c] = weight[r, c];
        }
        var scale = new float[rows, d / group];
        var shift = new float[rows, d / group];
        if (!dynamicGroups) GroupParameters(w, bits, group, Enumerable.Range(0, d / group), scale, shift);
        var codes = new int[rows, d];
        var dq = new double[rows, d];
        var done = new bool[d];
        foreach (int j in order)
        {
            int k = j / group;
            if (dynamicGroups && j % group == 0) GroupParameters(w, bits, group, [k], scale, shift);
            for (int r = 0; r < rows; r++)
            {
                float wj = (float)w[r, j];
                float q = bits == 8
                    ? Math.Clamp(MathF.Round(wj / scale[r, k], MidpointRounding.ToEven), -128, 127)
                    : Math.Clamp(MathF.Round((wj + shift[r, k]) / scale[r, k], MidpointRounding.ToEven), 0,
                        (1 << bits) - 1);
                codes[r, j] = (int)q;
                dq[r, j] = bits == 8 ? q * scale[r, k] : q * scale[r, k] - shift[r, k];
                double err = (w[r, j] - dq[r, j]) / hinv[j, j];
                for (int c = 0; c < d; c++)
                {
                    if (!done[c] && c != j) w[r, c] -= err * hinv[j, c];
                }
            }
            done[j] = true;
            // Hinv -= Hinv[:, j] Hinv[j, :] / Hinv[j, j]: the inverse Hessian of the columns left.
            double pivot = hinv[j, j];
            double[] row = Enumerable.Range(0, d).Select(c => hinv[j, c]).ToArray();
            double[] column = Enumerable.Range(0, d).Select(c => hinv[c, j]).ToArray();
            for (int a = 0; a < d; a++)
            {
                for (int b = 0; b < d; b++) hinv[a, b] -= column[a] * row[b] / pivot;
            }
        }
        return (codes, dq);
    }

    private static void GroupParameters(double[,] w, int bits, int group, IEnumerable<int> groups, float[,] scale,
        float[,] shift)
    {
        for (int r = 0; r < w.GetLength(0); r++)
        {
            foreach (int k in groups)
            {
                float[] values = Enumerable.Range(k * group, group).Select(c => (float)w[r, c]).ToArray();
                if (bits == 8)
                {
                    scale[r, k] = values.Max(MathF.Abs) / 127f;
                    continue;
                }
                float min = values.Min(), max = values.Max();
                float s = (max - min) / ((1 << bits) - 1);
                scale[r, k] = s == 0 ? 1 : s;
                shift[r, k] = -min;
            }
        }
    }

    internal static float[,] ToArray(Tensor t)
    {
        long rows = t.shape[0], cols = t.shape[1];
        float[] flat = Reference.Values(t).Select(v => (float)v).ToArray();
        var a = new float[rows, cols];
        for (long r = 0; r < rows; r++)
        {
            for (long c = 0; c < cols; c++) a[r, c] = flat[r * cols + c];
        }
        return a;
    }

    internal static int[,] Codes(QuantizedWeight q)
    {
        long rows = q.Shape[0], d = q.Shape[1];
        var codes = new int[rows, d];
        if (q is WeightQBitsTensor bits)
        {
            using Tensor unpacked = bits.UnpackCodes();
            byte[] b = unpacked.bytes.ToArray(); // (rows * d / g, g) row-major is (rows, d) row-major
            for (long i = 0; i < b.Length; i++) codes[i / d, i % d] = b[i];
        }
        else
        {
            sbyte[] s = ((WeightQBytesTensor)q).Data.data<sbyte>().ToArray();
            for (long i = 0; i < s.Length; i++) codes[i / d, i % d] = s[i];
        }
        return codes;
    }

    [TestCase(QType.QInt4, 16, false)]
    [TestCase(QType.QInt4, 16, true)]
    [TestCase(QType.QInt2, 8, false)]
    [TestCase(QType.QInt4, 48, false)]
    [TestCase(QType.QInt8, null, false)]
    [TestCase(QType.QInt8, null, true)]
    public void MatchesTheDirectColumnByColumnForm(QType qtype, int? group, bool actOrder)
    {
        const int Rows = 6, D = 48;
        using Tensor weight = Reference.RandomNormal(Rows, D, seed: 5);
        using Tensor x = CorrelatedInputs(96, D, seed: 6);
        using Tensor h = x.t().mm(x);
        var options = new GptqOptions
        {
            Damping = Damping, ActOrder = actOrder, BlockSize = 16, GroupOptimizer = new MaxOptimizer(),
        };
        using QuantizedWeight q = Gptq.Quantize(weight, h, qtype, group, options);
        // Dynamic group scales come from float32 updates here and double ones there: equal to ~1e-5.

        double[,] hessian = Hessian(x);
        int g = group ?? D;
        int[] order = actOrder
            ? Enumerable.Range(0, D).OrderByDescending(i => hessian[i, i]).ToArray()
            : Enumerable.Range(0, D).ToArray();
        bool dynamic = qtype != QType.QInt8 && !actOrder && g < D;
        (int[,] codes, double[,] dq) = ReferenceGptq(ToArray(weight), hessian, qtype.Bits(), g, order, dynamic);

        int[,] actual = Codes(q);
        int same = 0;
        for (int r = 0; r < Rows; r++)
        {
            for (int c = 0; c < D; c++) same += actual[r, c] == codes[r, c] ? 1 : 0;
        }
        Assert.That(same, Is.EqualTo(Rows * D), "every code as the reference picks it");
        using Tensor dequantized = q.Dequantize();
        float[,] ours = ToArray(dequantized);
        for (int r = 0; r < Rows; r++)
        {
            for (int c = 0; c < D; c++) Assert.That(ours[r, c], Is.EqualTo(dq[r, c]).Within(1e-4));
        }
    }

    [Test]
    public void BeatsRoundingToNearestOnTheCalibrationInputs()
    {
        using Tensor weight = Reference.RandomNormal(32, 128, seed: 7);
        using Tensor x = CorrelatedInputs(256, 128, seed: 8);
        using Tensor h = x.t().mm(x);
        using QuantizedWeight gptq = Gptq.Quantize(weight, h, QType.QInt4, 32);
        using QuantizedWeight rtn = WeightQuantizer.Quantize(weight, QType.QInt4, 32, new MaxOptimizer());
        using Tensor y = x.mm(weight.t()), yg = x.mm(gptq.Dequantize().t()), yr = x.mm(rtn.Dequantize().t());
        double errorGptq = Reference.MeanAbsError(y, yg), errorRtn = Reference.MeanAbsError(y, yr);
        TestContext.Out.WriteLine($"mean |dy|: round-to-nearest {errorRtn:G4}, GPTQ {errorGptq:G4}");
        Assert.That(errorGptq, Is.LessThan(0.6 * errorRtn));
    }

    /// <summary>
    /// Three inputs that are always equal (x1 = x2 = x3) and a fourth independent of them: the output needs only
    /// w1 + w2 + w3 on the grid. The int8 scale is 0.01 (set by w4 = 1.27); w1, w2, w3 sit 0.4, 0.4 and 0.2 steps
    /// above grid points, so rounding each loses a whole step in the sum, while passing each error on (GPTQ) lands
    /// the sum exactly: w1 rounds to 23 and its +0.4 step goes half to w2 (31.6 -> 32) and half to w3 (20.4); w2's
    /// -0.4 then all goes to w3 (20.0 -> 20). Output error ~0.
    /// </summary>
    [Test]
    public void SolvesTheDuplicatedInputCaseExactly()
    {
        using Tensor weight = tensor(new float[] { 0.234f, 0.314f, 0.202f, 1.27f }, [1, 4]);
        float[,] inputs = { { 1, 1, 1, 0 }, { -1, -1, -1, 0 }, { 2, 2, 2, 0 }, { 0, 0, 0, 1 }, { 0, 0, 0, -1 } };
        using Tensor x = Reference.Matrix(inputs);
        using Tensor h = x.t().mm(x);
        using QuantizedWeight q = Gptq.Quantize(weight, h, QType.QInt8, options: new GptqOptions { Damping = 1e-6 });
        Assert.That(Codes(q), Is.EqualTo(new[,] { { 23, 32, 20, 127 } }));
        using Tensor y = x.mm(weight.t()), yq = x.mm(q.Dequantize().t());
        Assert.That(Reference.Values(yq), Is.EqualTo(Reference.Values(y)).Within(1e-5));
        using QuantizedWeight rtn = WeightQuantizer.Quantize(weight, QType.QInt8);
        using Tensor yr = x.mm(rtn.Dequantize().t());
        Assert.That(Math.Abs(Reference.Values(yr)[0] - Reference.Values(y)[0]), Is.EqualTo(0.01).Within(1e-4),
            "rounding each weight loses one step");
    }

    [Test]
    public void ZeroInputsGiveZeroWeightsAndBadHessiansAreRefused()
    {
        using Tensor weight = Reference.RandomNormal(4, 16, seed: 9);
        using Tensor x = CorrelatedInputs(32, 16, seed: 10);
        using (no_grad()) x[.., 3] = zeros(32);
        using Tensor h = x.t().mm(x);
        using QuantizedWeight q = Gptq.Quantize(weight, h, QType.QInt8);
        using Tensor dq = q.Dequantize();
        Assert.That(Reference.Values(dq[.., 3]), Is.All.EqualTo(0), "an input that is always 0 carries nothing");

        var shape = Assert.Throws<ArgumentException>(() => Gptq.Quantize(weight, h[..8, ..8], QType.QInt4))!;
        Assert.That(shape.Message, Does.Contain("[16, 16]"));
        using Tensor nan = h.clone();
        using (no_grad()) nan[0, 0] = tensor(float.NaN);
        Assert.Throws<ArgumentException>(() => Gptq.Quantize(weight, nan, QType.QInt4));
        Assert.Throws<ArgumentException>(() => Gptq.Quantize(weight, h, QType.QFloat8E4M3Fn));
    }
}
