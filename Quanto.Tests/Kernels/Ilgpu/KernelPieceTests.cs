using System.Runtime.CompilerServices;
using NUnit.Framework;
using Quanto.Kernels.Ilgpu.Kernels;
using Quanto.Quantization;

namespace Quanto.Tests.Kernels.Ilgpu;

/// <summary>The pieces inside the kernels, run as plain C#: fp8 bit decoding, dp4a's portable form, chunk size.</summary>
[TestFixture]
public sealed class KernelPieceTests
{
    [Test]
    public void ChunkIsSixteenBytes() => Assert.That(Unsafe.SizeOf<Chunk16>(), Is.EqualTo(16));

    [TestCase(Float8Format.E4M3Fn)]
    [TestCase(Float8Format.E5M2)]
    public void Float8BitDecodingMatchesTheCodecForAll256Codes(Float8Format format)
    {
        ReadOnlySpan<float> table = Float8.DecodeTable(format);
        for (uint code = 0; code < 256; code++)
        {
            float decoded = format == Float8Format.E4M3Fn
                ? default(Float8E4M3FnDecoder).Decode(code)
                : default(Float8E5M2Decoder).Decode(code);
            if (float.IsNaN(table[(int)code])) Assert.That(decoded, Is.NaN, $"code 0x{code:X2}");
            else Assert.That(decoded, Is.EqualTo(table[(int)code]), $"code 0x{code:X2}");
        }
    }

    [Test]
    public void HandPickedFloat8Codes()
    {
        // e4m3fn: 0x7E = 1.1110.110 = 1.75 * 2^8 = 448 (max); 0x01 = 2^-9 (smallest subnormal); 0xB8 = -1.0.
        Assert.That(default(Float8E4M3FnDecoder).Decode(0x7E), Is.EqualTo(448f));
        Assert.That(default(Float8E4M3FnDecoder).Decode(0x01), Is.EqualTo(1f / 512));
        Assert.That(default(Float8E4M3FnDecoder).Decode(0xB8), Is.EqualTo(-1f));
        // e5m2: 0x7B = 1.11 * 2^15 = 57344 (max); 0x7C = +inf; 0x01 = 2^-16.
        Assert.That(default(Float8E5M2Decoder).Decode(0x7B), Is.EqualTo(57344f));
        Assert.That(default(Float8E5M2Decoder).Decode(0x7C), Is.EqualTo(float.PositiveInfinity));
        Assert.That(default(Float8E5M2Decoder).Decode(0x01), Is.EqualTo(1f / 65536));
    }

    [Test]
    public void Int8DecoderSignExtends()
    {
        for (int v = -128; v <= 127; v++)
            Assert.That(default(Int8Decoder).Decode((byte)(sbyte)v), Is.EqualTo((float)v));
    }

    [Test]
    public void PortableDp4aMatchesByteProducts()
    {
        var random = new Random(7);
        var bytes = new byte[8];
        for (int trial = 0; trial < 2000; trial++)
        {
            random.NextBytes(bytes);
            if (trial == 0) Array.Fill(bytes, (byte)0x80); // -128 * -128, four times
            int a = BitConverter.ToInt32(bytes, 0), b = BitConverter.ToInt32(bytes, 4);
            int c = random.Next(-1 << 20, 1 << 20);
            int expected = c;
            for (int i = 0; i < 4; i++) expected += (sbyte)bytes[i] * (sbyte)bytes[4 + i];

            Assert.That(Dp4a.Portable(a, b, c), Is.EqualTo(expected));
            Assert.That(Dp4a.Dot(a, b, c), Is.EqualTo(expected), "outside a CUDA kernel Dot takes the portable path");
        }
    }
}
