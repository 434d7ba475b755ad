// A small writer for ONNX graphs: nodes, fp32/int64 initializers as raw data, typed inputs/outputs, the model.
using System.Runtime.InteropServices;
using Google.Protobuf;
using TaskLM.Hf;
using TaskLM.Onnx.Proto;

namespace TaskLM.Onnx;

/// <summary>
/// Builds one ONNX graph node by node. Each <see cref="Op"/> call appends a node and returns the name of its
/// output value, so graph code reads like the forward pass it mirrors. Initializers are written as raw
/// little-endian bytes (ONNX's raw_data), as PyTorch's exporter writes them.
/// </summary>
internal sealed class OnnxGraph
{
    /// <summary>ONNX operator set the graphs use: 17 has LayerNormalization.</summary>
    public const int Opset = 17;
    /// <summary>IR version 8 is the one that goes with opset 17 (onnx's VERSIONS_TABLE).</summary>
    public const int IrVersion = 8;

    readonly GraphProto _g;
    readonly Dictionary<string, string> _constants = new(StringComparer.Ordinal);
    int _next;

    public OnnxGraph(string name) => _g = new GraphProto { Name = name };

    /// <summary>A fresh value name with a readable prefix.</summary>
    string Fresh(string hint) => $"{hint}_{_next++}";

    /// <summary>Adds an fp32 initializer (a weight) and returns its name.</summary>
    public string Weight(string name, long[] dims, float[] data) => Initializer(name, dims, data, TensorProto.Types.DataType.Float);

    /// <summary>Adds an int8 initializer (a quantized weight) and returns its name.</summary>
    public string WeightInt8(string name, long[] dims, sbyte[] data) => Initializer(name, dims, data, TensorProto.Types.DataType.Int8);

    string Initializer<T>(string name, long[] dims, T[] data, TensorProto.Types.DataType type) where T : unmanaged
    {
        long n = dims.Aggregate(1L, (a, d) => a * d);
        if (n != data.Length) throw new ArgumentException($"initializer {name}: {data.Length} values for shape [{string.Join(", ", dims)}]");
        var t = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(data.AsSpan())) };
        t.Dims.AddRange(dims);
        _g.Initializer.Add(t);
        return name;
    }

    /// <summary>An int64 constant (1-D, or a scalar when <paramref name="scalar"/>), shared between uses.</summary>
    public string I64(long[] values, bool scalar = false)
    {
        string key = (scalar ? "s:" : "v:") + string.Join(",", values);
        if (_constants.TryGetValue(key, out var existing)) return existing;
        string name = Fresh("const_i64");
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())) };
        if (!scalar) t.Dims.Add(values.Length);
        else if (values.Length != 1) throw new ArgumentException("a scalar constant has one value");
        _g.Initializer.Add(t);
        return _constants[key] = name;
    }

    /// <summary>1-D int64 constant.</summary>
    public string Ints(params long[] values) => I64(values);

    /// <summary>A scalar fp32 constant, shared between uses.</summary>
    public string F32(float value)
    {
        string key = "f:" + BitConverter.SingleToInt32Bits(value);
        if (_constants.TryGetValue(key, out var existing)) return existing;
        string name = Fresh("const_f32");
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(BitConverter.GetBytes(value)) };
        _g.Initializer.Add(t);
        return _constants[key] = name;
    }

    /// <summary>Appends a node with one output (named <paramref name="output"/>, or a fresh name) and returns it.
    /// Attributes: long, float, string, long[] or float[] values.</summary>
    public string Op(string opType, string[] inputs, string? output = null, params (string Name, object Value)[] attributes)
        => OpN(opType, inputs, 1, output is null ? null : [output], attributes)[0];

    /// <summary>Appends a node with <paramref name="outputCount"/> outputs and returns their names.</summary>
    public string[] OpN(string opType, string[] inputs, int outputCount, string[]? outputs = null, params (string Name, object Value)[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = Fresh(opType) };
        node.Input.AddRange(inputs);
        var outs = outputs ?? Enumerable.Range(0, outputCount).Select(_ => Fresh(opType.ToLowerInvariant())).ToArray();
        node.Output.AddRange(outs);
        foreach (var (name, value) in attributes) node.Attribute.Add(Attribute(name, value));
        _g.Node.Add(node);
        return outs;
    }

    static AttributeProto Attribute(string name, object value)
    {
        var a = new AttributeProto { Name = name };
        switch (value)
        {
            case int i: a.Type = AttributeProto.Types.AttributeType.Int; a.I = i; break;
            case long l: a.Type = AttributeProto.Types.AttributeType.Int; a.I = l; break;
            case float f: a.Type = AttributeProto.Types.AttributeType.Float; a.F = f; break;
            case double d: a.Type = AttributeProto.Types.AttributeType.Float; a.F = (float)d; break;
            case string s: a.Type = AttributeProto.Types.AttributeType.String; a.S = ByteString.CopyFromUtf8(s); break;
            case long[] ls: a.Type = AttributeProto.Types.AttributeType.Ints; a.Ints.AddRange(ls); break;
            case float[] fs: a.Type = AttributeProto.Types.AttributeType.Floats; a.Floats.AddRange(fs); break;
            default: throw new ArgumentException($"attribute {name}: unsupported value type {value.GetType().Name}");
        }
        return a;
    }

    /// <summary>Declares a graph input. Dimensions: a long (fixed) or a string (symbolic, e.g. "batch_size").</summary>
    public string Input(string name, TensorProto.Types.DataType type, params object[] dims)
    {
        _g.Input.Add(ValueInfo(name, type, dims));
        return name;
    }

    /// <summary>Declares a graph output; <paramref name="name"/> must be the output of a node.</summary>
    public void Output(string name, TensorProto.Types.DataType type, params object[] dims) => _g.Output.Add(ValueInfo(name, type, dims));

    static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d switch
            {
                string s => new TensorShapeProto.Types.Dimension { DimParam = s },
                long l => new TensorShapeProto.Types.Dimension { DimValue = l },
                int i => new TensorShapeProto.Types.Dimension { DimValue = i },
                _ => throw new ArgumentException($"dimension of {name}: {d}"),
            });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } } };
    }

    // ── layers the model graphs share ──

    /// <summary>x (..., in) @ w (in, out) + b (out): w is already in MatMul's [in, out] layout.</summary>
    public string Dense(string x, string w, string? b, string? output = null)
        => b is null ? Op("MatMul", [x, w], output) : Op("Add", [Op("MatMul", [x, w]), b], output);

    /// <summary>
    /// x (..., in) @ W (in, out) + b with W stored as int8 and the activations quantized at run time (dynamic
    /// quantization, as ONNX Runtime's quantize_dynamic does it): W is quantized here, once, symmetrically per output
    /// column — scale_n = max|W[:, n]| / 127, q = round(W / scale_n) in [-127, 127], zero point 0 — so no fp32 copy of W is
    /// written. <paramref name="wT"/> is W in [in, out] order. Each call x is quantized to uint8 with its own min/max
    /// (asymmetric, per tensor), the product is accumulated in int32 and scaled back to fp32 by x_scale · scale_n.
    /// <paramref name="ops"/> picks the operators: ONNX Runtime's fused com.microsoft DynamicQuantizeMatMul, or the standard
    /// ONNX ops any runtime has (DynamicQuantizeLinear → MatMulInteger → Cast → Mul), which ONNX Runtime fuses back.
    /// </summary>
    public string DenseInt8(string x, string name, float[] wT, int fin, int fout, string? b, Int8Ops ops, bool reduceRange = false)
    {
        var (q, scales) = Int8Quantizer.PerColumn(wT, fin, fout, reduceRange ? 63 : 127);
        string w = WeightInt8(name + ".int8", [fin, fout], q), s = Weight(name + ".scale", [fout], scales);
        if (ops == Int8Ops.Contrib)
        {
            // DynamicQuantizeMatMul(A, B, b_scale, b_zero_point, bias): per-column b_scale is supported; no zero point = 0.
            string[] inputs = b is null ? [x, w, s] : [x, w, s, "", b];
            return OpIn(MicrosoftDomain, "DynamicQuantizeMatMul", inputs);
        }
        var dq = OpN("DynamicQuantizeLinear", [x], 3);                                          // x_u8, x_scale, x_zero_point
        var acc = Op("MatMulInteger", [dq[0], w, dq[2]]);                                      // (..., out) int32
        var y = Op("Mul", [Op("Cast", [acc], null, ("to", (long)TensorProto.Types.DataType.Float)), Op("Mul", [dq[1], s])]);
        return b is null ? y : Op("Add", [y, b]);
    }

    /// <summary>ONNX Runtime's operator domain (contrib ops such as DynamicQuantizeMatMul).</summary>
    public const string MicrosoftDomain = "com.microsoft";
    bool _usesMicrosoftDomain;

    /// <summary>A node of another operator domain (one output).</summary>
    string OpIn(string domain, string opType, string[] inputs)
    {
        var output = Op(opType, inputs);
        _g.Node[^1].Domain = domain;
        if (domain == MicrosoftDomain) _usesMicrosoftDomain = true;
        return output;
    }

    /// <summary>LayerNormalization over the last axis (opset 17).</summary>
    public string LayerNorm(string x, string weight, string bias, double eps)
        => Op("LayerNormalization", [x, weight, bias], null, ("axis", -1L), ("epsilon", (float)eps));

    /// <summary>The activations the families use, in ONNX primitives (opset 17 has no Gelu op).</summary>
    public string Activation(string x, HfActivation act) => act switch
    {
        // 0.5 x (1 + erf(x / √2)): HF's "gelu"
        HfActivation.Gelu => Op("Mul", [Op("Mul", [x, F32(0.5f)]), Op("Add", [Op("Erf", [Op("Div", [x, F32((float)Math.Sqrt(2.0))])]), F32(1f)])]),
        // 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))): GPT-2's gelu_new
        HfActivation.GeluTanh => Op("Mul", [Op("Mul", [x, F32(0.5f)]),
            Op("Add", [F32(1f), Op("Tanh", [Op("Mul", [F32((float)Math.Sqrt(2.0 / Math.PI)),
                Op("Add", [x, Op("Mul", [F32(0.044715f), Op("Mul", [x, Op("Mul", [x, x])])])])])])])]),
        HfActivation.Relu => Op("Relu", [x]),
        HfActivation.Silu => Op("Mul", [x, Op("Sigmoid", [x])]),
        HfActivation.Tanh => Op("Tanh", [x]),
        _ => throw new ArgumentOutOfRangeException(nameof(act)),
    };

    /// <summary>(B, T, nh*hs) → (B, nh, T, hs).</summary>
    public string SplitHeads(string x, int heads, int headSize)
        => Op("Transpose", [Op("Reshape", [x, Ints(0, 0, heads, headSize)])], null, ("perm", new long[] { 0, 2, 1, 3 }));

    /// <summary>(B, nh, T, hs) → (B, T, nh*hs).</summary>
    public string MergeHeads(string x, int hidden)
        => Op("Reshape", [Op("Transpose", [x], null, ("perm", new long[] { 0, 2, 1, 3 })), Ints(0, 0, hidden)]);

    /// <summary>softmax(q kᵀ · scale + bias) v for q (B, nh, T, hs), k and v (B, nh, S, hs), bias broadcast to (B, nh, T, S).</summary>
    public string Attention(string q, string k, string v, string bias, float scale)
    {
        var kt = Op("Transpose", [k], null, ("perm", new long[] { 0, 1, 3, 2 }));            // (B, nh, hs, S)
        var scores = Op("Add", [Op("Mul", [Op("MatMul", [q, kt]), F32(scale)]), bias]);       // (B, nh, T, S)
        return Op("MatMul", [Op("Softmax", [scores], null, ("axis", -1L)), v]);               // (B, nh, T, hs)
    }

    /// <summary>The finished model: this graph, opset 17 of the default domain, TaskLM as producer.</summary>
    public ModelProto Model(string docString, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var m = new ModelProto
        {
            IrVersion = IrVersion, ProducerName = "TaskLM", ProducerVersion = typeof(OnnxGraph).Assembly.GetName().Version?.ToString() ?? "0",
            DocString = docString, Graph = _g,
        };
        m.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        if (_usesMicrosoftDomain) m.OpsetImport.Add(new OperatorSetIdProto { Domain = MicrosoftDomain, Version = 1 });
        foreach (var (k, v) in metadata ?? new Dictionary<string, string>()) m.MetadataProps.Add(new StringStringEntryProto { Key = k, Value = v });
        return m;
    }
}

/// <summary>Which operators an int8 Linear layer is written with (<see cref="OnnxGraph.DenseInt8"/>).</summary>
public enum Int8Ops
{
    /// <summary>com.microsoft DynamicQuantizeMatMul: one ONNX Runtime contrib op per layer.</summary>
    Contrib,
    /// <summary>Standard ONNX: DynamicQuantizeLinear, MatMulInteger, Cast, Mul (opset 10+), runnable outside ONNX Runtime.</summary>
    Onnx,
}

/// <summary>Weight quantization for the int8 export: symmetric, per output column, into [-127, 127].</summary>
internal static class Int8Quantizer
{
    /// <summary>Quantizes <paramref name="wT"/> (in, out), row-major: column n's scale is max|w[:, n]| / qmax (1 for an
    /// all-zero column), q = round-half-to-even(w / scale) in [-qmax, qmax]. <paramref name="qmax"/> 127 is 8 bits; 63
    /// (7 bits, ONNX Runtime's reduce_range) keeps u8 × s8 pair sums inside int16 (255·63·2 &lt; 32767), so CPUs without
    /// VNNI (vpmaddubsw saturates) compute them exactly. Returns q (same layout) and the out scales.</summary>
    public static (sbyte[] Q, float[] Scales) PerColumn(float[] wT, int fin, int fout, int qmax = 127)
    {
        if (wT.Length != (long)fin * fout) throw new ArgumentException($"{wT.Length} weights for [{fin}, {fout}]");
        var scales = new float[fout];
        for (int i = 0; i < fin; i++)
            for (int n = 0; n < fout; n++) scales[n] = Math.Max(scales[n], Math.Abs(wT[i * fout + n]));
        for (int n = 0; n < fout; n++) scales[n] = scales[n] > 0 ? scales[n] / qmax : 1f;
        var q = new sbyte[wT.Length];
        for (int i = 0; i < fin; i++)
            for (int n = 0; n < fout; n++)
                q[i * fout + n] = (sbyte)Math.Clamp(Math.Round(wT[i * fout + n] / scales[n], MidpointRounding.ToEven), -qmax, qmax);
        return (q, scales);
    }
}
