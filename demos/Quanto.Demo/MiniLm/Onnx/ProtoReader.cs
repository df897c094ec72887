namespace Quanto.Demo.MiniLm.Onnx;

/// <summary>One field of a protobuf message: its number, wire type, and either a varint/fixed value or the bytes of a
/// length-delimited payload (a string, packed numbers, or a nested message).</summary>
internal readonly record struct ProtoField(int Number, int WireType, ulong Value, ReadOnlyMemory<byte> Bytes);

/// <summary>
/// The protobuf wire format (varints, length-delimited and fixed fields), enough to walk an ONNX model without a
/// generated schema: ONNX models are plain proto3 messages whose large payloads (raw_data) stay slices of the
/// original buffer, never copied.
/// </summary>
internal static class ProtoReader
{
    public const int Varint = 0;
    public const int Fixed64 = 1;
    public const int LengthDelimited = 2;
    public const int Fixed32 = 5;

    /// <summary>The fields of one message, in order.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a well-formed protobuf message.</exception>
    public static List<ProtoField> Fields(ReadOnlyMemory<byte> message)
    {
        var fields = new List<ProtoField>();
        ReadOnlySpan<byte> span = message.Span;
        int at = 0;
        while (at < span.Length)
        {
            ulong tag = ReadVarint(span, ref at);
            int number = checked((int)(tag >> 3));
            int wire = (int)(tag & 7);
            switch (wire)
            {
                case Varint:
                    fields.Add(new ProtoField(number, wire, ReadVarint(span, ref at), default));
                    break;
                case Fixed64:
                    Need(span, at, 8);
                    fields.Add(new ProtoField(number, wire, BitConverter.ToUInt64(span.Slice(at, 8)), default));
                    at += 8;
                    break;
                case LengthDelimited:
                    int length = checked((int)ReadVarint(span, ref at));
                    Need(span, at, length);
                    fields.Add(new ProtoField(number, wire, 0, message.Slice(at, length)));
                    at += length;
                    break;
                case Fixed32:
                    Need(span, at, 4);
                    fields.Add(new ProtoField(number, wire, BitConverter.ToUInt32(span.Slice(at, 4)), default));
                    at += 4;
                    break;
                default:
                    throw new InvalidDataException($"protobuf field {number} has wire type {wire}, which proto3 " +
                                                   "does not use (groups); the file is not an ONNX model");
            }
        }
        return fields;
    }

    /// <summary>The UTF-8 text of a string field.</summary>
    public static string Text(ProtoField field) => System.Text.Encoding.UTF8.GetString(field.Bytes.Span);

    /// <summary>The values of a repeated integer field, which proto3 writes packed (one length-delimited run) but a
    /// writer may also write one varint per value.</summary>
    public static IEnumerable<long> Int64s(IEnumerable<ProtoField> fields, int number)
    {
        foreach (ProtoField field in fields.Where(f => f.Number == number))
        {
            if (field.WireType == Varint)
            {
                yield return (long)field.Value;
                continue;
            }
            int at = 0;
            while (at < field.Bytes.Length) yield return (long)ReadVarint(field.Bytes.Span, ref at);
        }
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> span, ref int at)
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            Need(span, at, 1);
            byte b = span[at++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return value;
        }
        throw new InvalidDataException("protobuf varint longer than 10 bytes: the file is not an ONNX model");
    }

    private static void Need(ReadOnlySpan<byte> span, int at, int count)
    {
        if (count < 0 || at + count > span.Length)
        {
            throw new InvalidDataException($"protobuf message truncated: {count} bytes needed at offset {at} of " +
                                           $"{span.Length}");
        }
    }
}
