using NUnit.Framework;
using Quanto.Quantization;
using Quanto.Tensors;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Quantization;

/// <summary>2x8 weights per qtype, worked out by hand (power-of-two scales make every tie exact).</summary>
public sealed class HandComputedTests
{
    [Test]
    public void QInt8RoundsTiesToEvenPerRow()
    {
        using Tensor w = Reference.Matrix(new float[,]
        {
            // absmax 127 -> scale 1: x/1 = 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0, -1.5 -> -2, 3.2 -> 3
            { 127f, -127f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 3.2f },
            // absmax 31.75 -> scale 0.25: x/0.25 = 127, -0.5, 1.5, 2.5, -3.5, 4, -127, 0.4
            { 31.75f, -0.125f, 0.375f, 0.625f, -0.875f, 1f, -31.75f, 0.1f },
        });
        using var q = (WeightQBytesTensor)WeightQuantizer.Quantize(w, QType.QInt8);
        Assert.That(q.Data.data<sbyte>().ToArray(), Is.EqualTo(new sbyte[]
        {
            127, -127, 0, 2, 2, 0, -2, 3,
            127, 0, 2, 2, -4, 4, -127, 0,
        }));
        Assert.That(q.Scale.data<float>().ToArray(), Is.EqualTo(new[] { 1f, 0.25f }));
        Assert.That(q.Scale.shape, Is.EqualTo(new long[] { 2, 1 }));
        using Tensor d = q.Dequantize();
        Assert.That(d.data<float>().ToArray(), Is.EqualTo(new[]
        {
            127f, -127f, 0f, 2f, 2f, 0f, -2f, 3f,
            31.75f, 0f, 0.5f, 0.5f, -1f, 1f, -31.75f, 0f,
        }));
    }

    [Test]
    public void QFloat8E4M3FnRoundsToNearestEven()
    {
        // absmax 448 -> scale 1; row 1 is row 0 doubled -> scale 2, same codes.
        float[] row = [448f, -448f, 0.1f, -3.3f, 1e-3f, 17f, 19f, 0f];
        float[] expected = [448f, -448f, 0.1015625f, -3.25f, 0.001953125f, 16f, 20f, 0f];
        AssertFloat8(QType.QFloat8E4M3Fn, row, expected);
    }

    [Test]
    public void QFloat8E5M2RoundsToNearestEven()
    {
        // 0.1 = 1.6 * 2^-4 -> 1.5 * 2^-4; 9 = tie between 8 and 10 -> 8; 11 = tie between 10 and 12 -> 12.
        float[] row = [57344f, -57344f, 0.1f, 5f, 7f, 9f, 11f, 0f];
        float[] expected = [57344f, -57344f, 0.09375f, 5f, 7f, 8f, 12f, 0f];
        AssertFloat8(QType.QFloat8E5M2, row, expected);
    }

    [Test]
    public void QFloat8E4M3FnuzRoundsToNearestEven()
    {
        // 0.1 = 1.6 * 2^-4 -> 1.625 * 2^-4; -1e-6 underflows to +0 (no negative zero in fnuz).
        float[] row = [240f, -240f, 0.1f, 17f, 19f, -1e-6f, 3f, 0f];
        float[] expected = [240f, -240f, 0.1015625f, 16f, 20f, 0f, 3f, 0f];
        AssertFloat8(QType.QFloat8E4M3Fnuz, row, expected);
    }

    [Test]
    public void QInt4AffineCodesShiftAndPackedBytes()
    {
        using Tensor w = Reference.Matrix(new float[,]
        {
            // min 0, max 15 -> scale 1, shift 0: codes are the values
            { 0f, 1f, 2f, 3f, 4f, 5f, 6f, 15f },
            // min -1, max 0.875 -> scale 0.125, shift 1; (x+1)/0.125 = 0, 15, 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 8, 12, 4
            { -1f, 0.875f, -0.9375f, -0.8125f, -0.6875f, 0f, 0.5f, -0.5f },
        });
        using var q = (WeightQBitsTensor)WeightQuantizer.Quantize(w, QType.QInt4);
        Assert.That(q.GroupSize, Is.EqualTo(8), "rows of 8 <= 128 are quantized per channel");
        Assert.That(q.Scale.data<float>().ToArray(), Is.EqualTo(new[] { 1f, 0.125f }));
        Assert.That(q.Shift.data<float>().ToArray(), Is.EqualTo(new[] { -0f, 1f }));
        using Tensor codes = q.UnpackCodes();
        Assert.That(codes.data<byte>().ToArray(), Is.EqualTo(new byte[]
        {
            0, 1, 2, 3, 4, 5, 6, 15,
            0, 15, 0, 2, 2, 8, 12, 4,
        }));
        // Two rows -> one packed row: low nibble row 0, high nibble row 1.
        Assert.That(q.Packed.data<byte>().ToArray(), Is.EqualTo(new byte[] { 0, 241, 2, 35, 36, 133, 198, 79 }));
        using Tensor d = q.Dequantize();
        Assert.That(d.data<float>().ToArray(), Is.EqualTo(new[]
        {
            0f, 1f, 2f, 3f, 4f, 5f, 6f, 15f,
            -1f, 0.875f, -1f, -0.75f, -0.75f, 0f, 0.5f, -0.5f,
        }));
    }

    [Test]
    public void QInt4ZeroPointVariant()
    {
        using Tensor w = Reference.Matrix(new float[,]
        {
            { 0f, 1f, 2f, 3f, 4f, 5f, 6f, 15f },
            // scale 0.125, zero-point round(1 / 0.125) = 8; codes round(x / 0.125) + 8, with -7.5 -> -8, -6.5 -> -6
            { -1f, 0.875f, -0.9375f, -0.8125f, -0.6875f, 0f, 0.5f, -0.5f },
        });
        using var q = (WeightQBitsTensor)WeightQuantizer.Quantize(w, QType.QInt4, shiftMode: ShiftMode.ZeroPoint);
        Assert.That(q.HasZeroPoint, Is.True);
        Assert.That(q.Shift.data<byte>().ToArray(), Is.EqualTo(new byte[] { 0, 8 }));
        using Tensor codes = q.UnpackCodes();
        Assert.That(codes.data<byte>().ToArray()[8..], Is.EqualTo(new byte[] { 0, 15, 0, 2, 2, 8, 12, 4 }));
        using Tensor d = q.Dequantize();
        Assert.That(d.data<float>().ToArray()[8..], Is.EqualTo(new[] { -1f, 0.875f, -1f, -0.75f, -0.75f, 0f, 0.5f, -0.5f }));
    }

    [Test]
    public void QInt2AffineCodesShiftAndPackedBytes()
    {
        using Tensor w = Reference.Matrix(new float[,]
        {
            { 0f, 1f, 2f, 3f, 0f, 3f, 1f, 2f },
            // min -0.5, max 1 -> scale 0.5, shift 0.5; (x+0.5)/0.5 = 0, 3, 1.5 -> 2, 0.5 -> 0, 2.5 -> 2, 2, 1, 3
            { -0.5f, 1f, 0.25f, -0.25f, 0.75f, 0.5f, 0f, 1f },
        });
        using var q = (WeightQBitsTensor)WeightQuantizer.Quantize(w, QType.QInt2);
        Assert.That(q.Scale.data<float>().ToArray(), Is.EqualTo(new[] { 1f, 0.5f }));
        Assert.That(q.Shift.data<float>().ToArray(), Is.EqualTo(new[] { -0f, 0.5f }));
        // Two rows -> one packed row: bits 0-1 row 0, bits 2-3 row 1.
        Assert.That(q.Packed.data<byte>().ToArray(), Is.EqualTo(new byte[] { 0, 13, 10, 3, 8, 11, 5, 14 }));
        using Tensor d = q.Dequantize();
        Assert.That(d.data<float>().ToArray(), Is.EqualTo(new[]
        {
            0f, 1f, 2f, 3f, 0f, 3f, 1f, 2f,
            -0.5f, 1f, 0.5f, -0.5f, 0.5f, 0.5f, 0f, 1f,
        }));
    }

    [Test]
    public void RowsShorterThanEightArePerChannel()
    {
        // Rows of 3: one group per row. Row 0: min 0, max 3.75 -> scale 0.25, shift 0; 0.625 / 0.25 = 2.5 -> 2.
        // Row 1: min -1, max 2.75 -> scale 0.25, shift 1; codes 0, 4, 15.
        using Tensor w = Reference.Matrix(new float[,] { { 0f, 0.625f, 3.75f }, { -1f, 0f, 2.75f } });
        using var q = (WeightQBitsTensor)WeightQuantizer.Quantize(w, QType.QInt4);
        Assert.That(q.GroupSize, Is.EqualTo(3));
        Assert.That(q.Packed.shape, Is.EqualTo(new long[] { 1, 3 }));
        using Tensor codes = q.UnpackCodes();
        Assert.That(codes.data<byte>().ToArray(), Is.EqualTo(new byte[] { 0, 2, 15, 0, 4, 15 }));
    }

    private static void AssertFloat8(QType qtype, float[] row, float[] expected)
    {
        float[] doubled = row.Select(v => v * 2).ToArray();
        using Tensor w = tensor(row.Concat(doubled).ToArray(), [2, 8]);
        using var q = (WeightQBytesTensor)WeightQuantizer.Quantize(w, qtype);
        Assert.That(q.Data.dtype, Is.EqualTo(qtype.Info().Storage));
        Assert.That(q.Scale.data<float>().ToArray(), Is.EqualTo(new[] { 1f, 2f }));
        using Tensor d = q.Dequantize();
        float[] expectedAll = expected.Concat(expected.Select(v => v * 2)).ToArray();
        Assert.That(d.data<float>().ToArray(), Is.EqualTo(expectedAll));
    }
}
