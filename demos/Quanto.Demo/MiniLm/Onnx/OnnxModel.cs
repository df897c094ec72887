using System.Runtime.InteropServices;

namespace Quanto.Demo.MiniLm.Onnx;

/// <summary>A tensor stored in an ONNX file (an initializer, or a Constant node's value).</summary>
/// <param name="Name">Its name in the graph.</param>
/// <param name="DataType">ONNX TensorProto.DataType (1 float, 7 int64, ...).</param>
/// <param name="Dims">Its shape.</param>
/// <param name="Data">Its little-endian element bytes (raw_data, or the typed field re-encoded).</param>
internal sealed record OnnxTensor(string Name, int DataType, long[] Dims, ReadOnlyMemory<byte> Data)
{
    public const int Float = 1;
    public const int Int64 = 7;

    /// <summary>The elements as floats.</summary>
    /// <exception cref="InvalidDataException">The tensor is not float32.</exception>
    public float[] Floats()
    {
        if (DataType != Float) throw new InvalidDataException($"ONNX tensor '{Name}' is type {DataType}, not float32");
        return MemoryMarshal.Cast<byte, float>(Data.Span).ToArray();
    }

    /// <summary>The elements as 64-bit integers.</summary>
    /// <exception cref="InvalidDataException">The tensor is not int64.</exception>
    public long[] Int64s()
    {
        if (DataType != Int64) throw new InvalidDataException($"ONNX tensor '{Name}' is type {DataType}, not int64");
        return MemoryMarshal.Cast<byte, long>(Data.Span).ToArray();
    }
}

/// <summary>One node of an ONNX graph.</summary>
internal sealed record OnnxNode(string Name, string OpType, string[] Inputs, string[] Outputs,
    IReadOnlyDictionary<string, ProtoField> Attributes)
{
    /// <summary>An integer attribute, or <paramref name="fallback"/> when the node does not set it (ONNX
    /// defaults).</summary>
    public long Int(string name, long fallback) =>
        Attributes.TryGetValue(name, out ProtoField field) ? (long)field.Value : fallback;
}

/// <summary>
/// The parts of an ONNX model (onnx.proto: ModelProto.graph, GraphProto.node / initializer / input / output) that a
/// weight converter needs. Tensors keep pointing into the model's bytes.
/// </summary>
internal sealed class OnnxModel
{
    // Field numbers from onnx.proto.
    private const int ModelGraph = 7;
    private const int GraphNode = 1, GraphInitializer = 5, GraphInput = 11, GraphOutput = 12;
    private const int NodeInput = 1, NodeOutput = 2, NodeName = 3, NodeOpType = 4, NodeAttribute = 5;
    private const int AttributeName = 1, AttributeTensor = 5;
    private const int TensorDims = 1, TensorDataType = 2, TensorFloatData = 4, TensorInt64Data = 7, TensorName = 8,
        TensorRawData = 9, TensorExternalData = 13;
    private const int ValueInfoName = 1;

    private OnnxModel(List<OnnxNode> nodes, Dictionary<string, OnnxTensor> initializers, string[] inputs,
        string[] outputs)
    {
        Nodes = nodes;
        Initializers = initializers;
        Inputs = inputs;
        Outputs = outputs;
    }

    /// <summary>The nodes in graph (topological) order.</summary>
    public IReadOnlyList<OnnxNode> Nodes { get; }

    /// <summary>The initializers by name.</summary>
    public IReadOnlyDictionary<string, OnnxTensor> Initializers { get; }

    /// <summary>The graph's input names.</summary>
    public IReadOnlyList<string> Inputs { get; }

    /// <summary>The graph's output names.</summary>
    public IReadOnlyList<string> Outputs { get; }

    /// <summary>Parses a whole model held in memory.</summary>
    /// <exception cref="InvalidDataException">The bytes are not an ONNX model this reader understands.</exception>
    public static OnnxModel Parse(ReadOnlyMemory<byte> model, string source)
    {
        try
        {
            ProtoField[] graphs = ProtoReader.Fields(model).Where(f => f.Number == ModelGraph).ToArray();
            if (graphs.Length != 1) throw new InvalidDataException("no graph (ModelProto field 7)");
            var nodes = new List<OnnxNode>();
            var initializers = new Dictionary<string, OnnxTensor>();
            var inputs = new List<string>();
            var outputs = new List<string>();
            foreach (ProtoField field in ProtoReader.Fields(graphs[0].Bytes))
            {
                switch (field.Number)
                {
                    case GraphNode:
                        nodes.Add(ReadNode(field.Bytes));
                        break;
                    case GraphInitializer:
                        OnnxTensor tensor = ReadTensor(field.Bytes);
                        initializers[tensor.Name] = tensor;
                        break;
                    case GraphInput:
                        inputs.Add(ValueName(field.Bytes));
                        break;
                    case GraphOutput:
                        outputs.Add(ValueName(field.Bytes));
                        break;
                }
            }
            return new OnnxModel(nodes, initializers, inputs.ToArray(), outputs.ToArray());
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{source}: {e.Message}", e);
        }
    }

    /// <summary>The nodes that read <paramref name="value"/>.</summary>
    public IEnumerable<OnnxNode> Consumers(string value) => Nodes.Where(n => n.Inputs.Contains(value));

    /// <summary>The node that writes <paramref name="value"/>, or null for graph inputs and initializers.</summary>
    public OnnxNode? Producer(string value) => Nodes.FirstOrDefault(n => n.Outputs.Contains(value));

    /// <summary>The tensor behind a value: an initializer, or the value attribute of the Constant node writing
    /// it; null when it is computed.</summary>
    public OnnxTensor? ConstantValue(string value)
    {
        if (Initializers.TryGetValue(value, out OnnxTensor? tensor)) return tensor;
        OnnxNode? producer = Producer(value);
        if (producer?.OpType != "Constant" || !producer.Attributes.TryGetValue("value", out ProtoField attribute))
            return null;
        return ReadTensor(attribute.Bytes);
    }

    private static OnnxNode ReadNode(ReadOnlyMemory<byte> bytes)
    {
        List<ProtoField> fields = ProtoReader.Fields(bytes);
        var attributes = new Dictionary<string, ProtoField>();
        foreach (ProtoField attribute in fields.Where(f => f.Number == NodeAttribute))
        {
            List<ProtoField> parts = ProtoReader.Fields(attribute.Bytes);
            string name = parts.Where(p => p.Number == AttributeName).Select(ProtoReader.Text).FirstOrDefault() ?? "";
            // The one value an attribute carries: the tensor (Constant's value) or its int/float.
            ProtoField value = parts.FirstOrDefault(p => p.Number == AttributeTensor);
            if (value.Number == 0) value = parts.FirstOrDefault(p => p.Number is 2 or 3);
            attributes[name] = value;
        }
        return new OnnxNode(
            fields.Where(f => f.Number == NodeName).Select(ProtoReader.Text).FirstOrDefault() ?? "",
            fields.Where(f => f.Number == NodeOpType).Select(ProtoReader.Text).FirstOrDefault() ?? "",
            fields.Where(f => f.Number == NodeInput).Select(ProtoReader.Text).ToArray(),
            fields.Where(f => f.Number == NodeOutput).Select(ProtoReader.Text).ToArray(),
            attributes);
    }

    private static OnnxTensor ReadTensor(ReadOnlyMemory<byte> bytes)
    {
        List<ProtoField> fields = ProtoReader.Fields(bytes);
        string name = fields.Where(f => f.Number == TensorName).Select(ProtoReader.Text).FirstOrDefault() ?? "";
        if (fields.Any(f => f.Number == TensorExternalData))
            throw new InvalidDataException($"tensor '{name}' keeps its data in an external file, which is not read");
        long[] dims = ProtoReader.Int64s(fields, TensorDims).ToArray();
        int type = (int)fields.Where(f => f.Number == TensorDataType).Select(f => f.Value).FirstOrDefault();
        ReadOnlyMemory<byte> data = fields.Where(f => f.Number == TensorRawData).Select(f => f.Bytes).FirstOrDefault();
        if (data.IsEmpty && type == OnnxTensor.Float)
        {
            // float_data is packed fixed32: already the little-endian float bytes.
            data = fields.Where(f => f.Number == TensorFloatData).Select(f => f.Bytes).FirstOrDefault();
        }
        else if (data.IsEmpty && type == OnnxTensor.Int64)
        {
            data = MemoryMarshal.AsBytes(ProtoReader.Int64s(fields, TensorInt64Data).ToArray().AsSpan()).ToArray();
        }
        long count = dims.Aggregate(1L, (a, b) => a * b);
        int elementSize = type switch
        {
            OnnxTensor.Float => 4,
            OnnxTensor.Int64 => 8,
            _ => 0,
        };
        if (elementSize > 0 && data.Length != count * elementSize)
        {
            throw new InvalidDataException($"tensor '{name}' has shape [{string.Join(", ", dims)}] but " +
                                           $"{data.Length} data bytes ({count * elementSize} expected)");
        }
        return new OnnxTensor(name, type, dims, data);
    }

    private static string ValueName(ReadOnlyMemory<byte> bytes) =>
        ProtoReader.Fields(bytes).Where(f => f.Number == ValueInfoName).Select(ProtoReader.Text).FirstOrDefault()
        ?? "";
}
