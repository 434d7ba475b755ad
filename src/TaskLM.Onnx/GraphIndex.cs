// An ONNX graph indexed for walking: constants by name, the node producing each value, the nodes consuming it.
using System.Runtime.InteropServices;
using TaskLM.Onnx.Proto;
using DT = TaskLM.Onnx.Proto.TensorProto.Types.DataType;

namespace TaskLM.Onnx;

/// <summary>
/// Read-only lookups over one <see cref="GraphProto"/> for the importer: initializers and Constant-node values
/// (both are "constants" here: PyTorch writes small shape constants either way), which node produces a value and
/// which nodes consume it. Errors name <see cref="Source"/>, the ONNX file.
/// </summary>
internal sealed class GraphIndex
{
    readonly Dictionary<string, TensorProto> _constants = new(StringComparer.Ordinal);
    readonly Dictionary<string, NodeProto> _producer = new(StringComparer.Ordinal);
    readonly Dictionary<string, List<NodeProto>> _consumers = new(StringComparer.Ordinal);

    /// <summary>The ONNX file, for messages.</summary>
    public string Source { get; }

    /// <summary>Names of the fp32 initializers, in file order.</summary>
    public IReadOnlyList<string> FloatInitializers { get; }

    public GraphIndex(GraphProto graph, string source)
    {
        Source = source;
        var floats = new List<string>();
        foreach (var t in graph.Initializer)
        {
            _constants[t.Name] = t;
            if (t.DataType == (int)DT.Float) floats.Add(t.Name);
        }
        FloatInitializers = floats;
        foreach (var n in graph.Node)
        {
            foreach (var o in n.Output) _producer[o] = n;
            foreach (var i in n.Input)
            {
                if (i.Length == 0) continue;                                  // an omitted optional input
                if (!_consumers.TryGetValue(i, out var list)) _consumers[i] = list = [];
                list.Add(n);
            }
            if (n.OpType == "Constant" && n.Output.Count == 1 && n.Attribute.FirstOrDefault(a => a.Name == "value")?.T is TensorProto v)
                _constants[n.Output[0]] = v;
        }
    }

    /// <summary>"MatMul node 'MatMul_34'" (or its first output's name when the node has none).</summary>
    public static string Describe(NodeProto n) => $"{n.OpType} node '{(n.Name.Length > 0 ? n.Name : n.Output.FirstOrDefault() ?? "?")}'";

    /// <summary>The node whose output <paramref name="value"/> is; null for graph inputs and initializers.</summary>
    public NodeProto? ProducerOf(string value) => _producer.GetValueOrDefault(value);

    /// <summary>The nodes reading <paramref name="value"/>.</summary>
    public IReadOnlyList<NodeProto> ConsumersOf(string value) => _consumers.TryGetValue(value, out var l) ? l : [];

    /// <summary>True when <paramref name="value"/> is an fp32 initializer or Constant.</summary>
    public bool IsFloatConstant(string value) => _constants.TryGetValue(value, out var t) && t.DataType == (int)DT.Float;

    /// <summary>Number of values of a constant (1 for a scalar), or 0 when <paramref name="name"/> is not one.</summary>
    public long Elements(string name) => _constants.TryGetValue(name, out var t) ? t.Dims.Aggregate(1L, (a, d) => a * d) : 0;

    /// <summary>The initializer holding HF key <paramref name="key"/>, spelled with or without the "bert." prefix.</summary>
    public string InitializerOf(string key) =>
        _constants.ContainsKey(key) ? key : _constants.ContainsKey("bert." + key) ? "bert." + key
        : throw new InvalidDataException($"{Source}: no initializer '{key}'");

    /// <summary>An fp32 constant as a <see cref="Weight"/> (raw little-endian bytes or float_data).</summary>
    public Weight Weight(string name)
    {
        var t = _constants.TryGetValue(name, out var x) ? x : throw new InvalidDataException($"{Source}: no initializer '{name}'");
        if (t.DataLocation == TensorProto.Types.DataLocation.External || t.ExternalData.Count > 0)
            throw new NotSupportedException($"{Source}: initializer '{name}' is stored in an external data file; import a model saved as one .onnx file");
        if (t.DataType != (int)DT.Float) throw new InvalidDataException($"{Source}: initializer '{name}' has ONNX data type {t.DataType}, not float32");
        long n = t.Dims.Aggregate(1L, (a, d) => a * d);
        float[] data = t.RawData.Length > 0 ? MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray() : [.. t.FloatData];
        if (data.Length != n) throw new InvalidDataException($"{Source}: initializer '{name}' holds {data.Length} values for shape [{string.Join(", ", t.Dims)}]");
        return new Weight([.. t.Dims], data);
    }

    /// <summary>The integer values of a constant (int64 or int32, raw or typed), or null when not a constant.</summary>
    public long[]? Ints(string name)
    {
        if (!_constants.TryGetValue(name, out var t)) return null;
        return t.DataType switch
        {
            (int)DT.Int64 => t.RawData.Length > 0 ? MemoryMarshal.Cast<byte, long>(t.RawData.Span).ToArray() : [.. t.Int64Data],
            (int)DT.Int32 => t.RawData.Length > 0 ? [.. MemoryMarshal.Cast<byte, int>(t.RawData.Span).ToArray().Select(i => (long)i)] : [.. t.Int32Data.Select(i => (long)i)],
            _ => null,
        };
    }

    /// <summary>The values of a shape tensor: a constant, or a Concat of pieces where each constant piece gives its
    /// values and each computed one (a dimension taken from a Shape at run time) gives -1. Null when neither.</summary>
    public long[]? ShapeValues(string value)
    {
        if (Ints(value) is long[] c) return c;
        if (ProducerOf(value) is not { OpType: "Concat" } concat) return null;
        var dims = new List<long>();
        foreach (var part in concat.Input) dims.AddRange(Ints(part) ?? [-1]);
        return [.. dims];
    }
}
