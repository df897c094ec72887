using NUnit.Framework;
using Quanto.Quantization;

namespace Quanto.Tests.Quantization;

/// <summary>optimum-quanto's PackedTensor layout, checked on hand-worked bytes and by round trips.</summary>
public sealed class PackingTests
{
    [Test]
    public void Int4FiveRowsMatchTheDocumentedLayout()
    {
        // 5 rows x 2 columns; r = ceil(5 / 2) = 3 packed rows; packed row j = row j | row (j + 3) << 4.
        byte[] codes = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15];
        byte[] packed = new byte[3 * 2];
        Packing.Pack(codes, 5, 2, 4, packed);
        byte[] expected =
        [
            1 | (7 << 4), 2 | (8 << 4), // rows 0 and 3
            3 | (9 << 4), 4 | (15 << 4), // rows 1 and 4
            5, 6, // row 2 alone: no row 5
        ];
        Assert.That(packed, Is.EqualTo(expected));
    }

    [Test]
    public void Int2FiveRowsMatchTheDocumentedLayout()
    {
        // 5 rows x 1 column; r = ceil(5 / 4) = 2; packed row j = row j | row (j+2) << 2 | row (j+4) << 4 | row (j+6) << 6.
        byte[] codes = [3, 1, 2, 0, 1];
        byte[] packed = new byte[2];
        Packing.Pack(codes, 5, 1, 2, packed);
        Assert.That(packed, Is.EqualTo(new byte[] { 3 | (2 << 2) | (1 << 4), 1 | (0 << 2) }));
    }

    [TestCase(1, 1, 4)]
    [TestCase(2, 3, 4)]
    [TestCase(7, 5, 4)]
    [TestCase(64, 128, 4)]
    [TestCase(1, 7, 2)]
    [TestCase(3, 3, 2)]
    [TestCase(6, 9, 2)]
    [TestCase(129, 32, 2)]
    public void RoundTripsAnyRowCount(int rows, int columns, int bits)
    {
        var random = new Random(rows * 1000 + columns * 10 + bits);
        byte[] codes = new byte[rows * columns];
        for (int i = 0; i < codes.Length; i++) codes[i] = (byte)random.Next(1 << bits);
        byte[] packed = new byte[Packing.PackedRows(rows, bits) * columns];
        Packing.Pack(codes, rows, columns, bits, packed);
        byte[] unpacked = new byte[codes.Length];
        Packing.Unpack(packed, rows, columns, bits, unpacked);
        Assert.That(unpacked, Is.EqualTo(codes));
        Assert.That(packed, Has.Length.EqualTo((rows + 8 / bits - 1) / (8 / bits) * columns));
    }

    [Test]
    public void RandomShapesRoundTrip()
    {
        var random = new Random(42);
        for (int trial = 0; trial < 200; trial++)
        {
            int bits = random.Next(2) == 0 ? 2 : 4;
            int rows = random.Next(1, 40), columns = random.Next(1, 20);
            byte[] codes = new byte[rows * columns];
            for (int i = 0; i < codes.Length; i++) codes[i] = (byte)random.Next(1 << bits);
            byte[] packed = new byte[Packing.PackedRows(rows, bits) * columns];
            Packing.Pack(codes, rows, columns, bits, packed);
            byte[] unpacked = new byte[codes.Length];
            Packing.Unpack(packed, rows, columns, bits, unpacked);
            Assert.That(unpacked, Is.EqualTo(codes), $"{rows}x{columns} at {bits} bits");
        }
    }

    [Test]
    public void CodesThatDoNotFitAreRejected()
    {
        var error = Assert.Throws<ArgumentException>(() => Packing.Pack([0, 16], 2, 1, 4, new byte[1]))!;
        Assert.That(error.Message, Does.Contain("16").And.Contain("4 bits"));
    }

    [Test]
    public void ShortBuffersAndBadBitWidthsAreRejected()
    {
        Assert.Throws<ArgumentException>(() => Packing.Pack(new byte[4], 4, 2, 4, new byte[3]));
        Assert.Throws<ArgumentException>(() => Packing.Unpack(new byte[4], 4, 2, 4, new byte[7]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Packing.PackedRows(4, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => Packing.PackedRows(4, 8));
    }
}
