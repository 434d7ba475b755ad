// ONNX exports under ONNX Runtime against Hugging Face's numbers (tests/fixtures/hf) and TaskLM's own forward passes.
using System.Diagnostics;
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;
using TaskLM.Models;
using TaskLM.Native;
using TaskLM.Onnx;
using TaskLM.Tests.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Tests.Export;

[Collection(SerialCollection.Name)]
public sealed class OnnxExportTests : IDisposable
{
    const double Tol = 1e-4;
    readonly string _tmp = Path.Combine(Path.GetTempPath(), "tasklm-onnx-" + Guid.NewGuid().ToString("N"));
    readonly Xunit.Abstractions.ITestOutputHelper _out;

    public OnnxExportTests(Xunit.Abstractions.ITestOutputHelper output) => _out = output;

    static OnnxExportTests() => TorchBackend.EnsureLoaded();

    public void Dispose() { if (Directory.Exists(_tmp)) Directory.Delete(_tmp, recursive: true); }

    string Export(string fixture, string? into = null)
    {
        string dir = Path.Combine(_tmp, into ?? fixture);
        OnnxExport.Export(Gpt2Tests.Fixture(fixture), dir);
        return dir;
    }

    static long[][] Rows(JsonNode? node) => node!.AsArray().Select(r => r!.AsArray().Select(x => x!.GetValue<long>()).ToArray()).ToArray();

    static Tensor T(long[][] rows) => tensor(rows.SelectMany(r => r).ToArray(), [rows.Length, rows[0].Length], dtype: int64);

    static double[] F(Tensor t) => t.to(float64).contiguous().data<double>().ToArray();

    void Close(IReadOnlyList<double> expected, IReadOnlyList<float> actual, string what, double tol = Tol)
    {
        Assert.Equal(expected.Count, actual.Count);
        double worst = 0;
        for (int i = 0; i < expected.Count; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        _out.WriteLine($"{what}: max |diff| {worst:g3} over {expected.Count} values");
        Assert.True(worst <= tol, $"{what}: max |diff| {worst:g3} > {tol:g3}");
    }

    [Theory]
    [InlineData("bert-cls", "classification")]
    [InlineData("bert-tok", "token-classification")]
    [InlineData("bert-qa", "question-answering")]
    [InlineData("bert-mlm", "masked-lm")]
    public void BertHeadsUnderOnnxRuntimeMatchHfAndTaskLm(string fixture, string task)
    {
        var exp = Gpt2Tests.Expected(fixture);
        var (ids, mask, types) = (Rows(exp["input_ids"]), Rows(exp["attention_mask"]), Rows(exp["token_type_ids"]));
        using var onnx = OnnxTaskModel.Load(Export(fixture));
        Assert.Equal(task, onnx.Task);
        var outs = onnx.Forward(ids, mask, types);

        var taskLm = ModelFactory.FromPretrained(Gpt2Tests.Fixture(fixture));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ours = taskLm.Forward(new ModelBatch { InputIds = T(ids), AttentionMask = T(mask), TokenTypeIds = T(types) });
        if (task == "question-answering")
        {
            Assert.Equal([ids.Length, ids[0].Length], outs["start_logits"].Shape);
            Close(Gpt2Tests.Flat(exp["start_logits"]), outs["start_logits"].Data, "start_logits vs HF");
            Close(Gpt2Tests.Flat(exp["end_logits"]), outs["end_logits"].Data, "end_logits vs HF");
            Close(F(ours.StartLogits!), outs["start_logits"].Data, "start_logits vs TaskLM");
            Close(F(ours.EndLogits!), outs["end_logits"].Data, "end_logits vs TaskLM");
        }
        else
        {
            Close(Gpt2Tests.Flat(exp["logits"]), outs["logits"].Data, "logits vs HF");
            Close(F(ours.Logits!), outs["logits"].Data, "logits vs TaskLM");
        }
    }

    [Fact]
    public void Gpt2ClassificationPoolsTheLastNonPadTokenAsHf()
    {
        var exp = Gpt2Tests.Expected("gpt2-cls");
        using var onnx = OnnxTaskModel.Load(Export("gpt2-cls"));
        var outs = onnx.Forward(Rows(exp["input_ids"]), Rows(exp["attention_mask"]));
        Assert.Equal([3L, 3L], outs["logits"].Shape);
        Close(Gpt2Tests.Flat(exp["logits"]), outs["logits"].Data, "gpt2-cls logits vs HF");
    }

    [Fact]
    public void Gpt2TinyFullSequenceLogitsMatchHfAndTaskLm()
    {
        var exp = Gpt2Tests.Expected("gpt2-tiny");
        var ids = Rows(exp["input_ids"]);
        using var onnx = OnnxTaskModel.Load(Export("gpt2-tiny"));
        Assert.Equal(["input_ids", "attention_mask", "position_ids", "past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value"],
            onnx.InputNames);
        var logits = onnx.Forward(ids)["logits"];                              // (2, 16, 50257)
        Assert.Equal([2L, 16L, 50257L], logits.Shape);
        int v = 50257;
        // HF stored the first 64 columns, the argmax and the logsumexp of each row.
        var first64 = Enumerable.Range(0, 32).SelectMany(r => logits.Data.AsSpan(r * v, 64).ToArray()).ToArray();
        Close(Gpt2Tests.Flat(exp["logits_first64"]), first64, "logits[..., :64] vs HF");
        Assert.Equal(Gpt2Tests.Flat(exp["logits_argmax"]).Select(x => (int)x), Enumerable.Range(0, 32).Select(r => OnnxTaskModel.Argmax(logits.Data.AsSpan(r * v, v).ToArray())));
        var lse = Enumerable.Range(0, 32).Select(r =>
        {
            var row = logits.Data.AsSpan(r * v, v).ToArray();
            double m = row.Max();
            return (float)(m + Math.Log(row.Sum(x => Math.Exp(x - m))));
        }).ToArray();
        Close(Gpt2Tests.Flat(exp["logits_logsumexp"]), lse, "logsumexp vs HF");

        var m = (Gpt2)PreTrainedModel.FromPretrained(Gpt2Tests.Fixture("gpt2-tiny"), family: Gpt2Family.Instance);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Close(F(m.Forward(new ModelBatch { InputIds = T(ids) }).Logits!), logits.Data, "all 50257 logits vs TaskLM");
    }

    [Fact]
    public void Gpt2TwoStepDecodeWithPastEqualsTheFullSequence()
    {
        var exp = Gpt2Tests.Expected("gpt2-tiny");
        var ids = Rows(exp["input_ids"]);
        using var onnx = OnnxTaskModel.Load(Export("gpt2-tiny"));
        var full = onnx.Forward(ids)["logits"];
        int split = 10, t = ids[0].Length, v = 50257;
        using var cache = onnx.NewCache(ids.Length);
        var first = onnx.DecodeStep(ids.Select(r => r[..split]).ToArray(), null, null, cache);        // (2, 10, V), P = 0
        Assert.Equal(split, cache.Length);
        var second = onnx.DecodeStep(ids.Select(r => r[split..]).ToArray(), null, null, cache);       // (2, 6, V), P = 10
        Assert.Equal(t, cache.Length);
        var stitched = new float[full.Data.Length];
        for (int b = 0; b < ids.Length; b++)
        {
            Array.Copy(first.Data, b * split * v, stitched, b * t * v, split * v);
            Array.Copy(second.Data, b * (t - split) * v, stitched, (b * t + split) * v, (t - split) * v);
        }
        Close(full.Data.Select(x => (double)x).ToArray(), stitched, "two-step decode with past vs full sequence");

        // Greedy generation (one token per step through present → past) gives HF's greedy continuation.
        var prompt = exp["prompt"]![0]!.AsArray().Select(x => x!.GetValue<int>()).ToList();
        var greedy = exp["greedy"]![0]!.AsArray().Select(x => x!.GetValue<int>()).ToList();
        var generated = onnx.Generate(prompt, greedy.Count - prompt.Count, eosTokenId: -1).ToList();
        Assert.Equal(greedy.Skip(prompt.Count), generated);
    }

    [Fact]
    public void Gpt2PaddedAttentionMaskMatchesTaskLmOnRealTokens()
    {
        // Left padding with explicit positions, as batched generation feeds it: rows' real tokens must match TaskLM.
        var ids = new long[][] { [0, 0, 0, 464, 3290, 318, 257], [1212, 318, 257, 1332, 286, 262, 1080] };
        var mask = new long[][] { [0, 0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1] };
        var pos = new long[][] { [0, 0, 0, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5, 6] };
        using var onnx = OnnxTaskModel.Load(Export("gpt2-tiny"));
        using var cache = onnx.NewCache(2);
        var logits = onnx.DecodeStep(ids, mask, pos, cache);
        var m = (Gpt2)PreTrainedModel.FromPretrained(Gpt2Tests.Fixture("gpt2-tiny"), family: Gpt2Family.Instance);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ours = F(m.LMHead!.Logits(T(ids), T(mask), T(pos)));
        int v = 50257;
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < 7; i++)
                if (mask[b][i] == 1)
                    Close(ours.AsSpan((b * 7 + i) * v, v).ToArray(), logits.Data.AsSpan((b * 7 + i) * v, v).ToArray(), $"row {b} position {i}");
    }

    [Fact]
    public void Gpt2TokenClassificationMatchesTaskLm()
    {
        // No HF fixture has this head: a seeded random one, saved by TaskLM, against TaskLM's own forward pass.
        manual_seed(11);
        var m = (Gpt2)ModelFactory.FromPreset("gpt2-tiny", "token-classification",
            new Dictionary<string, object> { ["vocab_size"] = 300, ["n_layer"] = 2, ["n_embd"] = 32, ["n_head"] = 4, ["n_positions"] = 32, ["num_labels"] = 4 });
        string hf = Path.Combine(_tmp, "gpt2-tok-hf");
        m.SavePretrained(hf);
        OnnxExport.Export(hf, Path.Combine(_tmp, "gpt2-tok"));
        using var onnx = OnnxTaskModel.Load(Path.Combine(_tmp, "gpt2-tok"));
        Assert.Equal("token-classification", onnx.Task);
        var ids = new long[][] { [5, 17, 290, 3, 44, 0], [1, 2, 3, 4, 5, 6] };
        var mask = new long[][] { [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1] };
        var got = onnx.Forward(ids, mask)["logits"];
        Assert.Equal([2L, 6L, 4L], got.Shape);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var want = F(m.Forward(new ModelBatch { InputIds = T(ids), AttentionMask = T(mask) }).Logits!);
        // Real tokens only: TaskLM and the graph differ only in what padded positions see.
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < 6; i++)
                if (mask[b][i] == 1) Close(want.AsSpan((b * 6 + i) * 4, 4).ToArray(), got.Data.AsSpan((b * 6 + i) * 4, 4).ToArray(), $"row {b} token {i}");
    }

    [Fact]
    public void RunnerUsesNoTorchSharp()
    {
        // The ONNX runner's assembly closure (within TaskLM's own assemblies) must not reach TorchSharp or TaskLM.dll,
        // so `--runtime onnx` runs where libtorch is absent.
        var seen = new HashSet<string>();
        var todo = new Stack<System.Reflection.AssemblyName>([typeof(OnnxTaskModel).Assembly.GetName()]);
        while (todo.Count > 0)
        {
            var name = todo.Pop();
            if (!seen.Add(name.Name!)) continue;
            Assert.False(name.Name is "TorchSharp" or "TaskLM", $"TaskLM.Onnx reaches {name.Name}");
            if (name.Name!.StartsWith("TaskLM", StringComparison.Ordinal))
                foreach (var r in System.Reflection.Assembly.Load(name).GetReferencedAssemblies()) todo.Push(r);
        }
        Assert.Contains("Microsoft.ML.OnnxRuntime", seen);
        Assert.Contains("TaskLM.Data", seen);
    }
}
