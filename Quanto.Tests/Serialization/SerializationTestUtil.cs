using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using static TorchSharp.torch;

namespace Quanto.Tests.Serialization;

/// <summary>Hand-building of files and tensor comparisons, independent of the code under test.</summary>
internal static class SerializationTestUtil
{
    /// <summary>A fresh folder under the temp dir, deleted by the caller.</summary>
    internal static string NewFolder()
    {
        string folder = Path.Combine(Path.GetTempPath(), "quanto-serial-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        return folder;
    }

    /// <summary>A safetensors file from header JSON and data: u64 LE length, header padded to 8, data.</summary>
    internal static byte[] SafetensorsBytes(string headerJson, byte[] data, bool pad = true)
    {
        byte[] header = Encoding.UTF8.GetBytes(headerJson);
        int padding = pad ? (8 - header.Length % 8) % 8 : 0;
        var file = new byte[8 + header.Length + padding + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)(header.Length + padding));
        header.CopyTo(file, 8);
        for (int i = 0; i < padding; i++) file[8 + header.Length + i] = (byte)' ';
        data.CopyTo(file, 8 + header.Length + padding);
        return file;
    }

    /// <summary>A safetensors file laid out as optimum-quanto's save_file writes it: __metadata__ {"format": "pt"},
    /// the tensors in the given order (name, safetensors dtype, shape, raw bytes), data contiguous.</summary>
    internal static byte[] OptimumQuantoSafetensors(
        IEnumerable<(string Name, string DType, long[] Shape, byte[] Data)> tensors)
    {
        var list = tensors.ToList();
        var header = new StringBuilder("{\"__metadata__\":{\"format\":\"pt\"}");
        long offset = 0;
        foreach ((string name, string dtype, long[] shape, byte[] data) in list)
        {
            header.Append(CultureInfo.InvariantCulture,
                $",\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{string.Join(",", shape)}]," +
                $"\"data_offsets\":[{offset},{offset + data.Length}]}}");
            offset += data.Length;
        }
        header.Append('}');
        return SafetensorsBytes(header.ToString(), Concat(list.Select(t => t.Data).ToArray()));
    }

    /// <summary>Little-endian bytes of floats.</summary>
    internal static byte[] F32(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        return bytes;
    }

    /// <summary>Concatenates byte arrays.</summary>
    internal static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    /// <summary>The raw bytes of a tensor (contiguous CPU copy).</summary>
    internal static byte[] Bytes(Tensor t)
    {
        using Tensor c = t.cpu().contiguous();
        return c.bytes.ToArray();
    }

    /// <summary>Same dtype, shape and bytes.</summary>
    internal static bool Identical(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && Bytes(a).AsSpan().SequenceEqual(Bytes(b));

    /// <summary>Float values of a tensor.</summary>
    internal static float[] Floats(Tensor t)
    {
        using Tensor f = t.to(ScalarType.Float32).cpu().contiguous();
        return f.data<float>().ToArray();
    }

    /// <summary>Reads a file's header JSON (as a reference reader would), to check what we wrote.</summary>
    internal static string HeaderJson(byte[] file)
    {
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(file);
        return Encoding.UTF8.GetString(file, 8, (int)n);
    }

    /// <summary>A tensor from raw bytes, via the .bytes setter (no value conversion).</summary>
    internal static Tensor FromBytes(byte[] bytes, ScalarType dtype, params long[] shape)
    {
        Tensor t = empty(shape, dtype: dtype);
        t.bytes = bytes;
        return t;
    }
}
