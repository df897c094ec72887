using System.Buffers;
using MessagePack;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>Reads one tensor entry of a .qnt package, verifying sizes and the checksum.</summary>
internal static class QntTensorReader
{
    private const int MaxRank = 64;

    internal static QntTensor Read(ref MessagePackReader reader, string source)
    {
        int fields = QntReader.ReadMapHeader(ref reader, source, "tensor");
        string? name = null, dtypeName = null, qtypeName = null;
        long[]? shape = null, weightShape = null;
        int? axis = null, groupSize = null;
        ulong? checksum = null;
        List<ReadOnlySequence<byte>>? chunks = null;
        for (int i = 0; i < fields; i++)
        {
            string key = QntReader.ReadString(ref reader, source, "tensor field");
            switch (key)
            {
                case "name": name = QntReader.ReadString(ref reader, source, "tensor name"); break;
                case "dtype": dtypeName = QntReader.ReadString(ref reader, source, "dtype"); break;
                case "shape": shape = ReadLongs(ref reader, source, "shape"); break;
                case "qtype":
                    qtypeName = reader.TryReadNil() ? null : QntReader.ReadString(ref reader, source, "qtype");
                    break;
                case "axis": axis = reader.TryReadNil() ? null : reader.ReadInt32(); break;
                case "group_size": groupSize = reader.TryReadNil() ? null : reader.ReadInt32(); break;
                case "weight_shape":
                    weightShape = reader.TryReadNil() ? null : ReadLongs(ref reader, source, "weight_shape");
                    break;
                case "checksum": checksum = reader.ReadUInt64(); break;
                case "data": chunks = ReadChunks(ref reader, source); break;
                default: QntReader.Skip(ref reader, source, 0); break;
            }
        }
        string label = name is null ? "tensor" : $"tensor '{name}'";
        if (name is null || dtypeName is null || shape is null || checksum is null || chunks is null)
            throw new QuantoFormatException(source, $"{label}: name, dtype, shape, checksum and data are required.");
        if (!SafetensorsDType.TryParse(dtypeName, out ScalarType dtype))
        {
            throw new QuantoFormatException(source,
                $"{label}: unknown dtype '{dtypeName}' (supported: {string.Join(", ", SafetensorsDType.Names)}).");
        }
        QType? qtype = null;
        if (qtypeName is not null)
        {
            if (!QTypes.TryParse(qtypeName, out QType q))
                throw new QuantoFormatException(source, $"{label}: unknown qtype '{qtypeName}'.");
            qtype = q;
        }
        long need = ByteCount(shape, dtype, label, source);
        long have = chunks.Sum(c => c.Length);
        if (need != have)
        {
            throw new QuantoFormatException(source,
                $"{label}: dtype {dtypeName} and shape {Checksums.FormatShape(shape)} need {need} bytes, " +
                $"but the data holds {have}.");
        }
        var hash = QntFormat.StartChecksum(name, dtypeName, shape, qtype, axis, groupSize, weightShape);
        Tensor tensor = TensorBytes.Allocate(shape, dtype);
        try
        {
            Fill(tensor, chunks, hash);
            if (hash.GetCurrentHashAsUInt64() != checksum)
                throw new QuantoFormatException(source,
                    $"checksum mismatch for {label}: the data or its description is corrupted.");
            return new QntTensor(name, tensor, qtype, axis, groupSize, weightShape);
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    private static void Fill(Tensor tensor, List<ReadOnlySequence<byte>> chunks, System.IO.Hashing.XxHash64 hash)
    {
        int index = 0;
        long offset = 0;
        TensorBytes.ForEachChunk(tensor, target =>
        {
            while (!target.IsEmpty)
            {
                ReadOnlySequence<byte> chunk = chunks[index];
                int take = (int)Math.Min(target.Length, chunk.Length - offset);
                chunk.Slice(offset, take).CopyTo(target);
                hash.Append(target[..take]);
                target = target[take..];
                offset += take;
                if (offset == chunk.Length)
                {
                    index++;
                    offset = 0;
                }
            }
        });
    }

    private static List<ReadOnlySequence<byte>> ReadChunks(ref MessagePackReader reader, string source)
    {
        int count = QntReader.ReadArrayHeader(ref reader, source, "data");
        var chunks = new List<ReadOnlySequence<byte>>();
        for (int i = 0; i < count; i++)
        {
            if (reader.NextMessagePackType != MessagePackType.Binary)
                throw new QuantoFormatException(source,
                    $"data chunk {i}: expected bytes, found {reader.NextMessagePackType}.");
            QntReader.CheckLength(ref reader, source, $"data chunk {i}");
            ReadOnlySequence<byte> chunk = reader.ReadBytes()!.Value; // a slice of the file: no copy
            if (!chunk.IsEmpty) chunks.Add(chunk);
        }
        return chunks;
    }

    private static long[] ReadLongs(ref MessagePackReader reader, string source, string what)
    {
        int rank = QntReader.ReadArrayHeader(ref reader, source, what);
        if (rank > MaxRank) throw new QuantoFormatException(source, $"{what} has {rank} dimensions.");
        var values = new long[rank];
        for (int i = 0; i < rank; i++)
        {
            values[i] = reader.ReadInt64();
            if (values[i] < 0) throw new QuantoFormatException(source, $"{what} has a negative dimension {values[i]}.");
        }
        return values;
    }

    private static long ByteCount(long[] shape, ScalarType dtype, string label, string source)
    {
        try
        {
            return checked(shape.Aggregate(1L, (a, b) => checked(a * b)) * SafetensorsDType.ElementSize(dtype));
        }
        catch (OverflowException)
        {
            throw new QuantoFormatException(source, $"{label}: shape {Checksums.FormatShape(shape)} is too large.");
        }
    }
}
