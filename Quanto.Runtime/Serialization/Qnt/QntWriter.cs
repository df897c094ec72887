using MessagePack;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>Writes a <see cref="QntPackage"/> in the <see cref="QntFormat"/> layout, streaming tensor bytes.</summary>
internal static class QntWriter
{
    internal static void Write(Stream stream, QntPackage package)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException(".qnt needs a little-endian host.");
        var sink = new StreamBufferWriter(stream);
        var writer = new MessagePackWriter(sink);
        writer.WriteMapHeader(6);
        writer.Write("magic");
        writer.Write(QntFormat.Magic);
        writer.Write("version");
        writer.WriteArrayHeader(2);
        writer.Write(QntFormat.Major);
        writer.Write(QntFormat.Minor);
        writer.Write("metadata");
        writer.WriteMapHeader(package.Metadata.Count);
        foreach (var (key, value) in package.Metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            writer.Write(key);
            writer.Write(value);
        }
        writer.Write("qmap");
        writer.WriteMapHeader(package.QuantizationMap.Count);
        foreach (var (module, spec) in package.QuantizationMap)
        {
            writer.Write(module);
            writer.WriteMapHeader(2);
            writer.Write("weights");
            writer.Write(spec.Weights?.QuantoName() ?? "none");
            writer.Write("activations");
            writer.Write(spec.Activations?.QuantoName() ?? "none");
        }
        writer.Write("header_checksum");
        writer.Write(QntFormat.HeaderChecksum(package.Metadata, package.QuantizationMap));
        writer.Write("tensors");
        writer.WriteArrayHeader(package.Tensors.Count);
        foreach (QntTensor item in package.Tensors.Values) WriteTensor(ref writer, stream, item);
        writer.Flush();
    }

    private static void WriteTensor(ref MessagePackWriter writer, Stream stream, QntTensor item)
    {
        Tensor tensor = TensorBytes.ContiguousCpu(item.Tensor);
        try
        {
            string dtype = SafetensorsDType.NameOf(tensor.dtype);
            var hash = QntFormat.StartChecksum(item.Name, dtype, tensor.shape, item.QType, item.Axis, item.GroupSize,
                item.WeightShape);
            int chunks = 0;
            TensorBytes.ForEachChunk(tensor, chunk =>
            {
                hash.Append(chunk);
                chunks++;
            });
            writer.WriteMapHeader(9);
            writer.Write("name");
            writer.Write(item.Name);
            writer.Write("dtype");
            writer.Write(dtype);
            WriteLongs(ref writer, "shape", tensor.shape);
            writer.Write("qtype");
            if (item.QType is QType q) writer.Write(q.QuantoName());
            else writer.WriteNil();
            WriteOptional(ref writer, "axis", item.Axis);
            WriteOptional(ref writer, "group_size", item.GroupSize);
            WriteLongs(ref writer, "weight_shape", item.WeightShape?.ToArray());
            writer.Write("checksum");
            writer.Write(hash.GetCurrentHashAsUInt64());
            writer.Write("data");
            writer.WriteArrayHeader(chunks);
            writer.Flush();
            // Bin headers go through the writer; the bytes go straight to the stream (no copy of the tensor).
            var sink = new StreamBufferWriter(stream);
            TensorBytes.ForEachChunk(tensor, chunk =>
            {
                var header = new MessagePackWriter(sink);
                header.WriteBinHeader(chunk.Length);
                header.Flush();
                stream.Write(chunk);
            });
        }
        finally
        {
            if (!ReferenceEquals(tensor, item.Tensor)) tensor.Dispose();
        }
    }

    private static void WriteOptional(ref MessagePackWriter writer, string key, int? value)
    {
        writer.Write(key);
        if (value is int v) writer.Write(v);
        else writer.WriteNil();
    }

    private static void WriteLongs(ref MessagePackWriter writer, string key, long[]? values)
    {
        writer.Write(key);
        if (values is null)
        {
            writer.WriteNil();
            return;
        }
        writer.WriteArrayHeader(values.Length);
        foreach (long v in values) writer.Write(v);
    }
}
