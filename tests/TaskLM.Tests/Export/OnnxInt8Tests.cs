// `tasklm export --format onnx --quantize int8`: dynamic int8 Linear layers of a BERT encoder under ONNX Runtime.
using System.Text.Json.Nodes;
using TaskLM.Hf;
using TaskLM.Onnx;
using TaskLM.Onnx.Proto;
using TaskLM.Tests.Models;

namespace TaskLM.Tests.Export;

public sealed class OnnxInt8Tests : IDisposable
{
    readonly string _tmp = Path.Combine(Path.GetTempPath(), "tasklm-int8-" + Guid.NewGuid().ToString("N"));
    readonly Xunit.Abstractions.ITestOutputHelper _out;

    public OnnxInt8Tests(Xunit.Abstractions.ITestOutputHelper output) => _out = output;

    public void Dispose() { if (Directory.Exists(_tmp)) Directory.Delete(_tmp, recursive: true); }

    // The six Linear layers of each encoder layer that become int8 (the pooler and the classifier stay fp32).
    static readonly string[] Quantized =
        ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense"];

    string Export(string fixture, string name, string? quantize = null, Int8Ops ops = Int8Ops.Contrib, bool reduceRange = false)
    {
        string dir = Path.Combine(_tmp, name);
        OnnxExport.Export(Gpt2Tests.Fixture(fixture), dir, quantize: quantize, int8Ops: ops, reduceRange: reduceRange);
        return dir;
    }

    static long[][] Rows(JsonNode? node) => node!.AsArray().Select(r => r!.AsArray().Select(x => x!.GetValue<long>()).ToArray()).ToArray();

    static ModelProto Read(string dir)
    {
        using var fs = File.OpenRead(Path.Combine(dir, "model.onnx"));
        return ModelProto.Parser.ParseFrom(fs);
    }

    // Tolerance: int8 changes every encoder matmul's inputs by up to half a quantization step — weights 1/254 of their
    // column's largest value, activations 1/510 of the tensor's range — so each product carries a relative error of about
    // 0.5% (the steps' errors are independent and average out over the sum), compounded over 2 layers × 6 matmuls and
    // then passed through LayerNorm. 5% of the largest fp32 logit bounds that with margin, and is still 10x tighter than
    // the gap between classes in these logits, so a wrong graph (a transposed weight, a scale of the wrong axis, a
    // dropped bias) fails it. The int8 logits must also differ from fp32 (the int8 path really runs).
    [Theory]
    [InlineData(Int8Ops.Contrib, false)]
    [InlineData(Int8Ops.Onnx, false)]
    [InlineData(Int8Ops.Contrib, true)]
    public void Int8ExportRunsInOnnxRuntimeCloseToFp32(Int8Ops ops, bool reduceRange)
    {
        var exp = Gpt2Tests.Expected("bert-cls");
        var (ids, mask, types) = (Rows(exp["input_ids"]), Rows(exp["attention_mask"]), Rows(exp["token_type_ids"]));
        using var fp32 = OnnxTaskModel.Load(Export("bert-cls", "fp32"));
        using var int8 = OnnxTaskModel.Load(Export("bert-cls", "int8", "int8", ops, reduceRange));
        Assert.Equal("fp32", fp32.Precision);
        Assert.Equal("int8 dynamic", int8.Precision);
        Assert.Equal(fp32.ParameterCount, int8.ParameterCount);   // the same weights, 6 matrices a layer stored as int8
        var f = fp32.Forward(ids, mask, types)["logits"].Data;
        var q = int8.Forward(ids, mask, types)["logits"].Data;
        Assert.Equal(f.Length, q.Length);
        double scale = f.Max(Math.Abs), worst = f.Zip(q, (a, b) => Math.Abs(a - b)).Max();
        _out.WriteLine($"{ops}{(reduceRange ? " reduce_range" : "")}: max |int8 - fp32| = {worst:g3}, max |fp32| = {scale:g3} ({worst / scale:P2})");
        Assert.True(worst > 0, "the int8 logits equal fp32's exactly: the quantized layers did not run");
        Assert.True(worst <= 0.05 * scale, $"max |int8 - fp32| {worst:g3} > 5% of max |fp32 logit| {scale:g3}");
    }

    [Fact]
    public void Int8GraphHoldsInt8WeightsAndNoFp32Copy()
    {
        string fp = Export("bert-cls", "fp32"), q = Export("bert-cls", "int8", "int8");
        var model = Read(q);
        var inits = model.Graph.Initializer.ToDictionary(t => t.Name);
        var cfg = HfConfig.Load(q);
        int layers = cfg.Need("num_hidden_layers"), h = cfg.Need("hidden_size"), inner = cfg.Need("intermediate_size");
        long quantizedWeights = 0, scales = 0;
        for (int i = 0; i < layers; i++)
            foreach (var name in Quantized)
            {
                string key = $"bert.encoder.layer.{i}.{name}.weight.T";
                Assert.True(inits.TryGetValue(key + ".int8", out var w), $"no int8 initializer {key}.int8");
                Assert.Equal((int)TensorProto.Types.DataType.Int8, w!.DataType);
                long n = w.Dims.Aggregate(1L, (a, d) => a * d);
                Assert.Equal(n, w.RawData.Length);                                   // one byte a weight
                Assert.Equal(w.Dims[1], inits[key + ".scale"].Dims.Single());        // one scale per output channel
                Assert.False(inits.ContainsKey(key), $"{key}: an fp32 copy of a quantized weight is in the graph");
                quantizedWeights += n; scales += w.Dims[1];
            }
        Assert.Equal((long)layers * (4 * h * h + 2 * h * inner), quantizedWeights);
        // Every fp32 initializer left is an embedding, LayerNorm, bias, scale, pooler or head tensor, never an encoder Linear weight.
        Assert.DoesNotContain(model.Graph.Initializer, t => t.DataType == (int)TensorProto.Types.DataType.Float
            && t.Name.Contains(".encoder.", StringComparison.Ordinal) && t.Name.EndsWith(".weight.T", StringComparison.Ordinal));
        Assert.Equal(layers * Quantized.Length, model.Graph.Node.Count(n => n.OpType == "DynamicQuantizeMatMul" && n.Domain == "com.microsoft"));
        Assert.Contains(model.OpsetImport, o => o.Domain == "com.microsoft");
        Assert.StartsWith("int8 dynamic", model.MetadataProps.Single(p => p.Key == OnnxExport.QuantizationKey).Value);
        // The file shrinks by 3 bytes a quantized weight, less 4 bytes a scale; protobuf framing, the scales' names and the
        // nodes differ by a few hundred bytes a matrix (that is most of the difference in this 32-wide model).
        long saved = new FileInfo(Path.Combine(fp, "model.onnx")).Length - new FileInfo(Path.Combine(q, "model.onnx")).Length;
        _out.WriteLine($"fp32 {new FileInfo(Path.Combine(fp, "model.onnx")).Length} bytes, int8 {new FileInfo(Path.Combine(q, "model.onnx")).Length} bytes: {saved} saved, {3 * quantizedWeights - 4 * scales} expected");
        int matrices = layers * Quantized.Length;
        Assert.InRange(saved, 3 * quantizedWeights - 4 * scales - 256 * matrices, 3 * quantizedWeights - 4 * scales + 256 * matrices);
    }

    [Fact]
    public void Int8QuantizerIsSymmetricPerOutputChannel()
    {
        // W (in 3, out 2): column 0's largest |w| is 2, column 1 is all zero (scale 1, not 0: no division by zero).
        float[] wT = [-2f, 0f, 1.01f, 0f, 0.25f, 0f];
        var (q, s) = Int8Quantizer.PerColumn(wT, 3, 2);
        Assert.Equal([2f / 127, 1f], s);
        Assert.Equal(new sbyte[] { -127, 0, 64, 0, 16, 0 }, q);   // 64.1 → 64, 15.9 → 16
        for (int i = 0; i < 3; i++) Assert.True(Math.Abs(q[2 * i] * s[0] - wT[2 * i]) <= s[0] / 2 + 1e-6);   // error ≤ half a step
        var (q7, s7) = Int8Quantizer.PerColumn(wT, 3, 2, qmax: 63);
        Assert.Equal(2f / 63, s7[0]);
        Assert.Equal(new sbyte[] { -63, 0, 32, 0, 8, 0 }, q7);
    }

    [Fact]
    public void Int8RefusesOtherFamiliesAndValuesClearly()
    {
        string dir = Path.Combine(_tmp, "gpt2");
        var e = Assert.Throws<NotSupportedException>(() => OnnxExport.Export(Gpt2Tests.Fixture("gpt2-tiny"), dir, quantize: "int8"));
        Assert.Contains("--quantize int8", e.Message);
        Assert.Contains("gpt2", e.Message);
        Assert.False(File.Exists(Path.Combine(dir, "model.onnx")));
        var bad = Assert.Throws<ArgumentException>(() => OnnxExport.Export(Gpt2Tests.Fixture("bert-cls"), dir, quantize: "int4"));
        Assert.Contains("int4", bad.Message);
    }

    [Fact]
    public void EvaluateScoresOnnxExportsAsHfScoresTheModel()
    {
        // The fixture's three rows, pre-tokenized (row 3's padding dropped); HF's accuracy and mean cross-entropy, the
        // fp32 export within the export tests' 1e-4 (logits), the int8 one within 1e-3 (its logits move by ~0.2% of their size).
        var exp = Gpt2Tests.Expected("bert-cls");
        var lines = new List<string>();
        int right = 0;
        for (int i = 0; i < 3; i++)
        {
            var mask = exp["attention_mask"]![i]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
            var ids = exp["input_ids"]![i]!.AsArray().Select(x => x!.GetValue<int>()).Where((_, j) => mask[j] == 1).ToArray();
            int label = exp["labels"]![i]!.GetValue<int>();
            lines.Add(new JsonObject { ["input_ids"] = new JsonArray(ids.Select(x => (JsonNode)x).ToArray()), ["labels"] = label }.ToJsonString());
            var row = exp["logits"]![i]!.AsArray().Select(x => x!.GetValue<double>()).ToList();
            if (row.IndexOf(row.Max()) == label) right++;
        }
        Directory.CreateDirectory(_tmp);
        string data = Path.Combine(_tmp, "test.jsonl");
        File.WriteAllLines(data, lines);
        double loss = exp["loss"]!.GetValue<double>();
        foreach (var (name, quantize, tol) in new[] { ("fp32", (string?)null, 1e-4), ("int8", "int8", 1e-3) })
        {
            string model = Export("bert-cls", name, quantize), outDir = Path.Combine(_tmp, "eval-" + name);
            var r = CliRunner.Run("evaluate", model, data, "--out", outDir, "--json", "--threads", "1");
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "eval.json")))!;
            Assert.Equal(3, json["n"]!.GetValue<int>());
            Assert.Equal(right / 3.0, json["metrics"]!["accuracy"]!.GetValue<double>(), 9);
            double got = json["metrics"]!["loss"]!.GetValue<double>();
            _out.WriteLine($"{name}: loss {got} vs HF {loss}");
            Assert.True(Math.Abs(got - loss) <= tol, $"{name}: loss {got} vs HF's {loss}");
        }
    }

    [Fact]
    public void CliQuantizeFlagRefusesGpt2AndNonOnnxFormats()
    {
        var gpt2 = CliRunner.Run("export", "--model", Gpt2Tests.Fixture("gpt2-tiny"), "--format", "onnx", "--quantize", "int8", "--out", Path.Combine(_tmp, "g"));
        Assert.NotEqual(0, gpt2.ExitCode);
        Assert.Contains("--quantize int8 is for BERT-family encoders", gpt2.Stderr + gpt2.Stdout);
        Assert.False(File.Exists(Path.Combine(_tmp, "g", "model.onnx")));
        var gguf = CliRunner.Run("export", "--model", Gpt2Tests.Fixture("gpt2-tiny"), "--format", "gguf", "--quantize", "int8", "--out", Path.Combine(_tmp, "g.gguf"));
        Assert.NotEqual(0, gguf.ExitCode);
        Assert.Contains("--quantize int8 is for --format onnx", gguf.Stderr + gguf.Stdout);
        var ok = CliRunner.Run("export", "--model", Gpt2Tests.Fixture("bert-cls"), "--format", "onnx", "--quantize", "int8", "--out", Path.Combine(_tmp, "b"), "--json");
        Assert.True(ok.ExitCode == 0, ok.Stderr);
        Assert.Equal("int8", JsonNode.Parse(ok.Stdout)!["quantize"]!.GetValue<string>());
        using var m = OnnxTaskModel.Load(Path.Combine(_tmp, "b"));
        Assert.Equal("int8 dynamic", m.Precision);
        Assert.Contains("int8 dynamic (", CpuInt8.Describe("onnx", m.Precision));   // what serve prints names the CPU's int8 instructions
    }
}
