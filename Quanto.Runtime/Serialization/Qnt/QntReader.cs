using System.Buffers;
using System.Buffers.Binary;
using MessagePack;

namespace Quanto.Serialization;

/// <summary>
/// Reads the layout of <see cref="QntFormat"/>. Every malformed input — truncation, wrong types, unknown names,
/// sizes that disagree, checksum mismatches, trailing bytes — becomes a <see cref="QuantoFormatException"/>.
/// </summary>
internal static class QntReader
{
    internal static QntPackage Read(ReadOnlySequence<byte> bytes, string source)
    {
        var package = new QntPackage();
        try
        {
            var reader = new MessagePackReader(bytes);
            ReadBody(ref reader, package, source);
            if (!reader.End)
            {
                throw new QuantoFormatException(source,
                    $"{bytes.Length - reader.Consumed} unexpected bytes after the package (extended or corrupted).");
            }
            return package;
        }
        catch (Exception e) when (e is EndOfStreamException)
        {
            package.Dispose();
            throw new QuantoFormatException(source, "truncated: the package ends in the middle of a value.", e);
        }
        catch (Exception e) when (e is MessagePackSerializationException or OverflowException)
        {
            package.Dispose();
            throw new QuantoFormatException(source, $"not a valid .qnt package: {e.Message}", e);
        }
        catch
        {
            package.Dispose();
            throw;
        }
    }

    private static void ReadBody(ref MessagePackReader reader, QntPackage package, string source)
    {
        if (reader.NextMessagePackType != MessagePackType.Map)
            throw new QuantoFormatException(source, "not a .qnt package (no MessagePack map at the start).");
        int count = reader.ReadMapHeader();
        if (count < 2 || ReadString(ref reader, source, "key") != "magic" ||
            ReadString(ref reader, source, "magic") != QntFormat.Magic)
        {
            throw new QuantoFormatException(source, $"not a .qnt package (the magic '{QntFormat.Magic}' is missing).");
        }
        if (ReadString(ref reader, source, "key") != "version")
            throw new QuantoFormatException(source, "the format version must follow the magic.");
        package.FormatVersion = ReadVersion(ref reader, source);
        ulong? headerChecksum = null;
        bool sawTensors = false, sawMeta = false, sawQmap = false;
        for (int i = 2; i < count; i++)
        {
            string key = ReadString(ref reader, source, "key");
            switch (key)
            {
                case "metadata":
                    sawMeta = true;
                    int n = ReadMapHeader(ref reader, source, "metadata");
                    for (int j = 0; j < n; j++)
                    {
                        string k = ReadString(ref reader, source, "metadata key");
                        if (!package.Metadata.TryAdd(k, ReadString(ref reader, source, $"metadata '{k}'")))
                            throw new QuantoFormatException(source, $"metadata lists '{k}' twice.");
                    }
                    break;
                case "qmap":
                    sawQmap = true;
                    ReadQmap(ref reader, package.QuantizationMap, source);
                    break;
                case "header_checksum":
                    headerChecksum = reader.ReadUInt64();
                    break;
                case "tensors":
                    sawTensors = true;
                    int tensors = ReadArrayHeader(ref reader, source, "tensors");
                    for (int j = 0; j < tensors; j++)
                    {
                        QntTensor tensor = QntTensorReader.Read(ref reader, source);
                        if (!package.Tensors.TryAdd(tensor.Name, tensor))
                        {
                            tensor.Tensor.Dispose();
                            throw new QuantoFormatException(source, $"tensor '{tensor.Name}' appears twice.");
                        }
                    }
                    break;
                default:
                    Skip(ref reader, source, 0); // a key from a newer minor version
                    break;
            }
        }
        if (!sawTensors || !sawMeta || !sawQmap || headerChecksum is null)
            throw new QuantoFormatException(source,
                "missing section: metadata, qmap, header_checksum and tensors are required.");
        if (headerChecksum != QntFormat.HeaderChecksum(package.Metadata, package.QuantizationMap))
            throw new QuantoFormatException(source, "checksum mismatch in the header (metadata or quantization map).");
    }

    private static Version ReadVersion(ref MessagePackReader reader, string source)
    {
        if (ReadArrayHeader(ref reader, source, "version") != 2)
            throw new QuantoFormatException(source, "version must be [major, minor].");
        int major = reader.ReadInt32(), minor = reader.ReadInt32();
        if (major > QntFormat.Major)
        {
            throw new QuantoFormatException(source,
                $"format version {major}.{minor} is newer than this reader supports ({QntFormat.Major}.x); " +
                "update Quanto.NET to read it.");
        }
        if (major < 1 || minor < 0)
            throw new QuantoFormatException(source, $"invalid format version {major}.{minor}.");
        return new Version(major, minor);
    }

    private static void ReadQmap(ref MessagePackReader reader, QuantizationMap map, string source)
    {
        int modules = ReadMapHeader(ref reader, source, "qmap");
        for (int i = 0; i < modules; i++)
        {
            string module = ReadString(ref reader, source, "qmap module");
            int fields = ReadMapHeader(ref reader, source, $"qmap '{module}'");
            string? weights = null, activations = null;
            for (int j = 0; j < fields; j++)
            {
                string field = ReadString(ref reader, source, "qmap field");
                string value = ReadString(ref reader, source, $"qmap '{module}' {field}");
                if (field == "weights") weights = value;
                else if (field == "activations") activations = value;
            }
            var spec = new QuantizationSpec(
                QuantizationMap.ParseQType(weights, "weights", module, source),
                QuantizationMap.ParseQType(activations, "activations", module, source));
            if (!map.Modules.TryAdd(module, spec))
                throw new QuantoFormatException(source, $"qmap lists module '{module}' twice.");
        }
    }

    internal static string ReadString(ref MessagePackReader reader, string source, string what)
    {
        if (reader.NextMessagePackType != MessagePackType.String)
            throw new QuantoFormatException(source, $"{what}: expected a string, found {reader.NextMessagePackType}.");
        CheckLength(ref reader, source, what);
        return reader.ReadString()!;
    }

    /// <summary>
    /// Checks the length of the str or bin value at the reader against the rest of the input, before MessagePack
    /// slices with it: MessagePack 2.5 reads 32-bit lengths into an int, so 2^31 or more turns negative and makes it
    /// throw ArgumentOutOfRangeException instead of reporting the truncation.
    /// </summary>
    internal static void CheckLength(ref MessagePackReader reader, string source, string what)
    {
        ReadOnlySequence<byte> rest = reader.Sequence.Slice(reader.Position);
        Span<byte> head = stackalloc byte[5];
        int available = (int)Math.Min(head.Length, rest.Length);
        rest.Slice(0, available).CopyTo(head);
        byte code = head[0];
        // fixstr; bin8/str8; bin16/str16; bin32/str32 (big-endian lengths); -1 when the header itself is cut off.
        (int header, long length) = code switch
        {
            >= 0xA0 and <= 0xBF => (1, code & 0x1F),
            0xC4 or 0xD9 => (2, available >= 2 ? head[1] : -1),
            0xC5 or 0xDA => (3, available >= 3 ? BinaryPrimitives.ReadUInt16BigEndian(head[1..]) : -1),
            0xC6 or 0xDB => (5, available >= 5 ? BinaryPrimitives.ReadUInt32BigEndian(head[1..]) : -1L),
            _ => (1, 0L),
        };
        if (length < 0 || length > rest.Length - header)
            throw new QuantoFormatException(source, $"truncated: {what} runs past the end of the input.");
    }

    internal static int ReadMapHeader(ref MessagePackReader reader, string source, string what)
    {
        if (reader.NextMessagePackType != MessagePackType.Map)
            throw new QuantoFormatException(source, $"{what}: expected a map, found {reader.NextMessagePackType}.");
        return CheckCount(reader.ReadMapHeader(), source, what);
    }

    internal static int ReadArrayHeader(ref MessagePackReader reader, string source, string what)
    {
        if (reader.NextMessagePackType != MessagePackType.Array)
            throw new QuantoFormatException(source, $"{what}: expected an array, found {reader.NextMessagePackType}.");
        return CheckCount(reader.ReadArrayHeader(), source, what);
    }

    /// <summary>A 32-bit count of 2^31 or more comes back negative from MessagePack 2.5.</summary>
    private static int CheckCount(int count, string source, string what) => count >= 0
        ? count
        : throw new QuantoFormatException(source, $"{what}: element count {(uint)count} is larger than the input.");

    /// <summary>Skips one value with a nesting limit (MessagePack's own Skip recurses without one).</summary>
    internal static void Skip(ref MessagePackReader reader, string source, int depth)
    {
        if (depth > QntFormat.MaxSkipDepth)
            throw new QuantoFormatException(source, $"values nested deeper than {QntFormat.MaxSkipDepth} levels.");
        switch (reader.NextMessagePackType)
        {
            case MessagePackType.Array:
                for (int n = ReadArrayHeader(ref reader, source, "value"); n > 0; n--)
                    Skip(ref reader, source, depth + 1);
                break;
            case MessagePackType.Map:
                for (int n = ReadMapHeader(ref reader, source, "value"); n > 0; n--)
                {
                    Skip(ref reader, source, depth + 1);
                    Skip(ref reader, source, depth + 1);
                }
                break;
            default:
                try
                {
                    reader.Skip();
                }
                catch (ArgumentOutOfRangeException e)
                {
                    // MessagePack 2.5 reports a string or bin longer than the rest of the input this way.
                    throw new EndOfStreamException("A value runs past the end of the input.", e);
                }
                break;
        }
    }
}
