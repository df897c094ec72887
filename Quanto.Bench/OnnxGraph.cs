using System.Buffers.Binary;
using System.Text;

namespace Quanto.Bench;

/// <summary>
/// The parts of an ONNX model the real-weight benchmark needs, read straight from its protobuf encoding: the graph's
/// nodes (op type, inputs, outputs) and its float32 initializers (name, dims, values). Fields: ModelProto.graph = 7;
/// GraphProto.node = 1, initializer = 5; NodeProto.input = 1, output = 2, op_type = 4; TensorProto.dims = 1,
/// data_type = 2 (1 = FLOAT), float_data = 4, name = 8, raw_data = 9 (little-endian).
/// </summary>
internal sealed class OnnxGraph
{
    public List<(string OpType, List<string> Inputs, List<string> Outputs)> Nodes { get; } = [];

    public Dictionary<string, (long[] Dims, float[] Values)> Initializers { get; } = new(StringComparer.Ordinal);

    public static OnnxGraph Parse(byte[] model)
    {
        var graph = new OnnxGraph();
        foreach ((int field, ReadOnlyMemory<byte> value) in Fields(model))
        {
            if (field != 7) continue;
            foreach ((int f, ReadOnlyMemory<byte> v) in Fields(value))
            {
                if (f == 1) graph.Nodes.Add(Node(v));
                else if (f == 5 && Tensor(v) is { } t) graph.Initializers[t.Name] = (t.Dims, t.Values);
            }
        }
        return graph;
    }

    private static (string, List<string>, List<string>) Node(ReadOnlyMemory<byte> bytes)
    {
        string op = "";
        List<string> inputs = [], outputs = [];
        foreach ((int f, int wire, ReadOnlyMemory<byte> v, ulong _) in Read(bytes))
        {
            if (wire != 2) continue;
            if (f == 1) inputs.Add(Encoding.UTF8.GetString(v.Span));
            else if (f == 2) outputs.Add(Encoding.UTF8.GetString(v.Span));
            else if (f == 4) op = Encoding.UTF8.GetString(v.Span);
        }
        return (op, inputs, outputs);
    }

    private static (string Name, long[] Dims, float[] Values)? Tensor(ReadOnlyMemory<byte> bytes)
    {
        string name = "";
        var dims = new List<long>();
        long dataType = 0;
        float[]? values = null;
        foreach ((int f, int wire, ReadOnlyMemory<byte> v, ulong varint) in Read(bytes))
        {
            switch (f)
            {
                case 1 when wire == 0:
                    dims.Add((long)varint);
                    break;
                case 1:
                    for (int at = 0; at < v.Length;) dims.Add((long)ReadVarint(v.Span, ref at));
                    break;
                case 2:
                    dataType = (long)varint;
                    break;
                case 4:
                case 9:
                    values = new float[v.Length / 4];
                    for (int i = 0; i < values.Length; i++)
                        values[i] = BinaryPrimitives.ReadSingleLittleEndian(v.Span.Slice(i * 4, 4));
                    break;
                case 8:
                    name = Encoding.UTF8.GetString(v.Span);
                    break;
            }
        }
        return dataType == 1 && values is not null ? (name, dims.ToArray(), values) : null;
    }

    /// <summary>The length-delimited fields.</summary>
    private static IEnumerable<(int Field, ReadOnlyMemory<byte> Value)> Fields(ReadOnlyMemory<byte> bytes) =>
        Read(bytes).Where(f => f.Wire == 2).Select(f => (f.Field, f.Value));

    /// <summary>Each field: its number, wire type, bytes (length-delimited) and value (varint).</summary>
    private static IEnumerable<(int Field, int Wire, ReadOnlyMemory<byte> Value, ulong Varint)> Read(
        ReadOnlyMemory<byte> bytes)
    {
        int at = 0;
        while (at < bytes.Length)
        {
            ulong key = ReadVarint(bytes.Span, ref at);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            switch (wire)
            {
                case 0:
                    yield return (field, wire, ReadOnlyMemory<byte>.Empty, ReadVarint(bytes.Span, ref at));
                    break;
                case 1:
                    at += 8;
                    break;
                case 2:
                    int length = checked((int)ReadVarint(bytes.Span, ref at));
                    yield return (field, wire, bytes.Slice(at, length), 0);
                    at += length;
                    break;
                case 5:
                    at += 4;
                    break;
                default:
                    throw new InvalidDataException($"Unsupported protobuf wire type {wire} at byte {at}.");
            }
        }
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> bytes, ref int at)
    {
        ulong value = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte b = bytes[at++];
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return value;
        }
    }
}
