using NUnit.Framework;
using Quanto.Quantization;
using static TorchSharp.torch;

namespace Quanto.Tests.Quantization;

/// <summary>The managed float8 codec against libtorch's own casts (dtype ids 23/24/26).</summary>
public sealed class Float8Tests
{
    private static readonly Float8Format[] Formats = [Float8Format.E4M3Fn, Float8Format.E5M2, Float8Format.E4M3Fnuz];

    private static ScalarType Dtype(Float8Format format) => format switch
    {
        Float8Format.E4M3Fn => QTypes.Float8E4M3Fn,
        Float8Format.E5M2 => QTypes.Float8E5M2,
        _ => QTypes.Float8E4M3Fnuz,
    };

    [TestCaseSource(nameof(Formats))]
    public void DecodeMatchesLibtorchForAll256Codes(Float8Format format)
    {
        byte[] codes = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        using Tensor f8 = empty(256, Dtype(format));
        f8.bytes = codes;
        using Tensor decoded = f8.to(ScalarType.Float32);
        float[] expected = decoded.data<float>().ToArray();
        for (int code = 0; code < 256; code++)
        {
            float ours = Float8.Decode((byte)code, format);
            if (float.IsNaN(expected[code]))
                Assert.That(ours, Is.NaN, $"code 0x{code:X2}");
            else
                Assert.That(BitConverter.SingleToInt32Bits(ours), Is.EqualTo(BitConverter.SingleToInt32Bits(expected[code])),
                    $"code 0x{code:X2}: ours {ours}, libtorch {expected[code]}");
        }
    }

    [TestCaseSource(nameof(Formats))]
    public void EncodeMatchesLibtorchClampThenCastOnDenseSamplesAndBoundaries(Float8Format format)
    {
        float[] inputs = DenseSamples().Concat(Boundaries(format)).ToArray();
        float max = Float8.MaxValue(format);
        using Tensor x = tensor(inputs);
        using Tensor clamped = x.clamp(-max, max); // optimum-quanto clamps before casting; libtorch casts do not saturate
        using Tensor cast = clamped.to(Dtype(format));
        byte[] expected = cast.bytes.ToArray();
        var ours = new byte[inputs.Length];
        Float8.Encode(inputs, ours, format);

        int mismatches = 0;
        string first = "";
        for (int i = 0; i < inputs.Length; i++)
        {
            if (ours[i] == expected[i]) continue;
            if (mismatches++ == 0)
            {
                first = $"input {inputs[i]:R} (0x{BitConverter.SingleToUInt32Bits(inputs[i]):X8}): " +
                        $"ours 0x{ours[i]:X2}, libtorch 0x{expected[i]:X2}";
            }
        }
        Assert.That(mismatches, Is.Zero, $"{mismatches} of {inputs.Length} codes differ; first: {first}");
        Assert.That(inputs, Has.Length.GreaterThan(2 << 20));
    }

    [TestCase(0.1f, 0.1015625f)]
    [TestCase(-3.3f, -3.25f)]
    [TestCase(448f, 448f)]
    [TestCase(500f, 448f)] // saturates (a plain libtorch cast gives NaN)
    [TestCase(1e-3f, 0.001953125f)]
    [TestCase(17f, 16f)] // tie between 16 and 18: even mantissa
    [TestCase(19f, 20f)] // tie between 18 and 20: even mantissa
    [TestCase(float.PositiveInfinity, 448f)]
    [TestCase(float.NegativeInfinity, -448f)]
    public void E4M3FnHandValues(float input, float expected) =>
        Assert.That(Float8.Decode(Float8.Encode(input, Float8Format.E4M3Fn), Float8Format.E4M3Fn), Is.EqualTo(expected));

    [Test]
    public void E4M3FnuzHasNoNegativeZeroAndOneNaN()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Float8.Encode(-0f, Float8Format.E4M3Fnuz), Is.EqualTo(0x00));
            Assert.That(Float8.Encode(-1e-9f, Float8Format.E4M3Fnuz), Is.EqualTo(0x00));
            Assert.That(Float8.Encode(float.NaN, Float8Format.E4M3Fnuz), Is.EqualTo(0x80));
            Assert.That(Float8.Decode(0x80, Float8Format.E4M3Fnuz), Is.NaN);
            Assert.That(Float8.MaxValue(Float8Format.E4M3Fnuz), Is.EqualTo(240f));
            Assert.That(Float8.MaxValue(Float8Format.E5M2), Is.EqualTo(57344f));
        });
    }

    [Test]
    public void SpanOverloadsRejectShortDestinations()
    {
        Assert.Throws<ArgumentException>(() => Float8.Encode(new float[3], new byte[2], Float8Format.E5M2));
        Assert.Throws<ArgumentException>(() => Float8.Decode(new byte[3], new float[2], Float8Format.E5M2));
    }

    // Every 2^12th float32 bit pattern (all exponents, signs, NaN payloads), once with zero low bits (exact ties) and
    // once with pseudo-random low bits (sticky bits below the rounding point).
    private static IEnumerable<float> DenseSamples()
    {
        for (uint i = 0; i < 1u << 20; i++)
        {
            uint high = i << 12;
            yield return BitConverter.UInt32BitsToSingle(high);
            uint low = (i * 2654435761u) >> 20;
            yield return BitConverter.UInt32BitsToSingle(high | low);
        }
    }

    // Each representable value, the midpoints between neighbours and one float32 ulp either side of both, plus
    // specials: zeros, NaNs, infinities, float32 subnormals, and values just above the format's max.
    private static IEnumerable<float> Boundaries(Float8Format format)
    {
        float[] finite = Float8.DecodeTable(format).ToArray().Where(float.IsFinite).Distinct().Order().ToArray();
        var points = new List<float>();
        for (int i = 0; i < finite.Length; i++)
        {
            points.Add(finite[i]);
            if (i + 1 < finite.Length) points.Add((float)(((double)finite[i] + finite[i + 1]) / 2));
        }
        foreach (float p in points)
        {
            yield return p;
            yield return MathF.BitIncrement(p);
            yield return MathF.BitDecrement(p);
        }
        float max = Float8.MaxValue(format);
        foreach (float special in new[]
                 {
                     0f, -0f, float.NaN, -float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon,
                     -float.Epsilon, 1e-40f, -1e-40f, float.MaxValue, float.MinValue, max * 1.0625f, -max * 1.0625f,
                     max * 2, -max * 2,
                 })
        {
            yield return special;
        }
    }
}
