namespace Quanto.Quantization;

/// <summary>
/// optimum-quanto's PackedTensor layout for 2- and 4-bit codes, bit-exact. The unpacked tensor is a row-major
/// (rows, columns) matrix of codes in [0, 2^bits). With k = 8 / bits codes per byte and r = ceil(rows / k) packed
/// rows, source row i*r + j goes to bits [bits*i, bits*(i+1)) of packed row j, least significant first:
/// for int4, packed byte (j, c) = code(j, c) | code(j + r, c) &lt;&lt; 4. Rows past the end contribute zero bits.
/// </summary>
public static class Packing
{
    /// <summary>Packed row count for <paramref name="rows"/> rows of <paramref name="bits"/>-bit codes.</summary>
    /// <exception cref="ArgumentOutOfRangeException">bits is not 2 or 4, or rows is negative.</exception>
    public static int PackedRows(int rows, int bits)
    {
        int perByte = CodesPerByte(bits);
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        return (rows + perByte - 1) / perByte;
    }

    /// <summary>Packs codes (rows x columns, row-major) into <paramref name="packed"/> (PackedRows x columns).</summary>
    /// <exception cref="ArgumentException">Span lengths disagree with the shape, or a code does not fit in bits.</exception>
    public static void Pack(ReadOnlySpan<byte> codes, int rows, int columns, int bits, Span<byte> packed)
    {
        int packedRows = PackedRows(rows, bits);
        CheckLengths(codes.Length, rows, columns, packed.Length, packedRows, bits);
        int limit = 1 << bits;
        packed[..(packedRows * columns)].Clear();
        for (int row = 0; row < rows; row++)
        {
            int plane = row / packedRows;
            int shift = bits * plane;
            ReadOnlySpan<byte> source = codes.Slice(row * columns, columns);
            Span<byte> target = packed.Slice((row - plane * packedRows) * columns, columns);
            for (int c = 0; c < columns; c++)
            {
                int code = source[c];
                if (code >= limit)
                {
                    throw new ArgumentException(
                        $"Code {code} at ({row}, {c}) does not fit in {bits} bits (valid: 0..{limit - 1}).",
                        nameof(codes));
                }
                target[c] |= (byte)(code << shift);
            }
        }
    }

    /// <summary>Unpacks <paramref name="packed"/> into codes (rows x columns, row-major).</summary>
    /// <exception cref="ArgumentException">Span lengths disagree with the shape.</exception>
    public static void Unpack(ReadOnlySpan<byte> packed, int rows, int columns, int bits, Span<byte> codes) =>
        UnpackRows(packed, rows, columns, bits, 0, rows, codes);

    /// <summary>Unpacks rows [firstRow, firstRow + rowCount) of a packed (rows x columns) matrix into
    /// <paramref name="codes"/> (rowCount x columns).</summary>
    /// <exception cref="ArgumentException">Span lengths disagree with the shape.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The row range is outside the matrix.</exception>
    public static void UnpackRows(
        ReadOnlySpan<byte> packed, int rows, int columns, int bits, int firstRow, int rowCount, Span<byte> codes)
    {
        int packedRows = PackedRows(rows, bits);
        if (firstRow < 0 || rowCount < 0 || firstRow + rowCount > rows)
        {
            throw new ArgumentOutOfRangeException(nameof(firstRow),
                $"Rows [{firstRow}, {firstRow + rowCount}) are outside a matrix of {rows} rows.");
        }
        CheckLengths(codes.Length, rowCount, columns, packed.Length, packedRows, bits);
        int mask = (1 << bits) - 1;
        for (int i = 0; i < rowCount; i++)
        {
            int row = firstRow + i;
            int plane = row / packedRows;
            int shift = bits * plane;
            ReadOnlySpan<byte> source = packed.Slice((row - plane * packedRows) * columns, columns);
            Span<byte> target = codes.Slice(i * columns, columns);
            for (int c = 0; c < columns; c++) target[c] = (byte)((source[c] >> shift) & mask);
        }
    }

    internal static int CodesPerByte(int bits) => bits switch
    {
        2 => 4,
        4 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(bits), bits, "Only 2- and 4-bit codes are packed."),
    };

    private static void CheckLengths(int codesLength, int rows, int columns, int packedLength, int packedRows, int bits)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(columns);
        long need = (long)rows * columns;
        if (codesLength < need)
            throw new ArgumentException($"Codes hold {codesLength} values; a {rows}x{columns} matrix needs {need}.");
        long needPacked = (long)packedRows * columns;
        if (packedLength < needPacked)
        {
            throw new ArgumentException(
                $"Packed buffer holds {packedLength} bytes; {rows} rows of {bits}-bit codes x {columns} need {needPacked}.");
        }
    }
}
