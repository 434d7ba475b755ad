// `--runtime onnx`: predict and serve run a `tasklm export --format onnx` folder through ONNX Runtime, without libtorch,
// and give what the torch runtime gives on the model it was exported from.
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using TaskLM.Models;
using TaskLM.Native;
using TaskLM.Serving;

namespace TaskLM.Tests.Serving;

public class OnnxRuntimeTests
{
    public OnnxRuntimeTests() => TorchBackend.EnsureLoaded();

    static StringContent JsonBody(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>`tasklm export --format onnx` of a model folder into a new temp folder.</summary>
    static string Export(string model)
    {
        string dir = Path.Combine(ServingFixtures.TempDir(), "onnx");
        var r = CliRunner.Run("export", "--model", model, "--format", "onnx", "--out", dir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.True(File.Exists(Path.Combine(dir, "model.onnx")));
        Assert.False(File.Exists(Path.Combine(dir, "model.safetensors")));   // nothing TorchSharp could load
        return dir;
    }

    /// <summary>The bert-cls fixture (labels neg/neu/pos) with its classifier made decisive for <paramref name="rows"/>
    /// (each row's word ids): weights scaled up and the mean logit over the rows taken out of the bias, so the rows get
    /// different labels and clearly different probabilities (the fixture's are all near 1/3, one label for all).</summary>
    static string SharpClassifier(IReadOnlyList<int[]> rows)
    {
        string dir = ServingFixtures.Bert("bert-cls", ["neg", "neu", "pos"]);
        var m = ModelFactory.FromPretrained(dir, "classification");
        m.Module.eval();
        using (var scope = TorchSharp.torch.NewDisposeScope())
        using (TorchSharp.torch.no_grad())
        {
            var named = m.Module.named_parameters().ToDictionary(x => x.name, x => x.parameter);
            named["classifier.weight"].mul_(300); named["classifier.bias"].mul_(300);
            var logits = rows.Select(r => m.Forward(new ModelBatch { InputIds = TorchSharp.torch.tensor(new long[] { 2 }.Concat(r.Select(x => (long)x)).Append(3).ToArray()).unsqueeze(0) }).Logits!).ToList();
            named["classifier.bias"].sub_(TorchSharp.torch.cat(logits, 0).mean([0]));
            named["classifier.weight"].mul_(20); named["classifier.bias"].mul_(20);
        }
        m.SavePretrained(dir);
        m.Module.Dispose();
        return dir;
    }

    static List<JsonObject> Jsonl(string path) => File.ReadAllLines(path).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    [Fact]
    public void Predict_with_the_onnx_runtime_gives_the_torch_runtimes_labels_and_probabilities()
    {
        var rng = new Random(7);
        // Rows of different lengths, so batches are padded.
        var rows = Enumerable.Range(0, 40).Select(i => Enumerable.Range(0, 1 + i % 9).Select(_ => rng.Next(5, 1000)).ToArray()).ToList();
        string model = SharpClassifier(rows);
        string onnx = Export(model);
        string dir = ServingFixtures.TempDir();
        string input = Path.Combine(dir, "in.jsonl");
        File.WriteAllLines(input, rows.Select((r, i) => new JsonObject { ["id"] = i, ["text"] = ServingFixtures.Words(r) }.ToJsonString()));
        string torchOut = Path.Combine(dir, "torch.jsonl"), onnxOut = Path.Combine(dir, "onnx.jsonl");
        var t = CliRunner.Run("predict", "--model", model, input, "--out", torchOut, "--runtime", "torch", "--batch-size", "8");
        Assert.True(t.ExitCode == 0, t.Stderr);
        var o = CliRunner.Run("predict", "--model", onnx, input, "--out", onnxOut, "--runtime", "onnx", "--batch-size", "8");
        Assert.True(o.ExitCode == 0, o.Stderr);
        var want = Jsonl(torchOut); var got = Jsonl(onnxOut);
        Assert.Equal(40, got.Count);
        for (int i = 0; i < 40; i++)
        {
            Assert.Equal((int)want[i]["id"]!, (int)got[i]["id"]!);                         // input columns kept, in order
            Assert.Equal((string)want[i]["label"]!, (string)got[i]["label"]!);
            foreach (var name in new[] { "neg", "neu", "pos" })
                Assert.Equal((double)want[i]["probabilities"]![name]!, (double)got[i]["probabilities"]![name]!, 1e-4);
        }
        Assert.True(want.Select(r => (string)r["label"]!).Distinct().Count() > 1, "every row got one label: the comparison would be weak");

        // auto picks ONNX Runtime for an export; torch on an export is refused with the fix named.
        var auto = CliRunner.Run("predict", "--model", onnx, "--text", (string)want[3]["text"]!);
        Assert.True(auto.ExitCode == 0, auto.Stderr);
        Assert.Equal((double)want[3]["score"]!, (double)JsonNode.Parse(auto.Stdout)!["score"]!, 1e-4);
        var wrong = CliRunner.Run("predict", "--model", onnx, "--text", "w5", "--runtime", "torch");
        Assert.Equal(1, wrong.ExitCode);
        Assert.Contains("--runtime onnx", wrong.Stderr);
        var noExport = CliRunner.Run("predict", "--model", model, "--text", "w5", "--runtime", "onnx");
        Assert.Equal(1, noExport.ExitCode);
        Assert.Contains("tasklm export", noExport.Stderr);
    }

    [Fact]
    public async Task Serve_with_the_onnx_runtime_answers_classify_and_greedy_completions_as_the_torch_runtime_without_libtorch()
    {
        string cls = ServingFixtures.Bert("bert-cls", ["ham", "spam", "eggs"]);
        string gpt = ServingFixtures.Hf("gpt2-tiny");
        string clsOnnx = Export(cls), gptOnnx = Export(gpt);
        // The torch runtime in process (the code `tasklm serve` runs), the onnx runtime as `tasklm serve --runtime onnx` processes.
        await using var torchCls = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 }, () => TaskLMModel.Load(cls));
        await using var torchGpt = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 }, () => TaskLMModel.Load(gpt));
        await torchCls.Ready; await torchGpt.Ready;
        await using var onnxCls = await ServeProcess.StartAsync("--model", clsOnnx, "--runtime", "onnx");
        await using var onnxGpt = await ServeProcess.StartAsync("--model", gptOnnx, "--runtime", "onnx", "--max-batch-size", "8");
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(5) };

        async Task<JsonNode> Post(string url, string route, string json)
        {
            var r = await http.PostAsync(url + route, JsonBody(json));
            string body = await r.Content.ReadAsStringAsync();
            Assert.True(r.StatusCode == HttpStatusCode.OK, $"{route} on {url}: {(int)r.StatusCode} {body}");
            return JsonNode.Parse(body)!;
        }

        string batch = new JsonObject { ["input"] = new JsonArray(ServingFixtures.Words(373, 33, 321), ServingFixtures.Words(742), ServingFixtures.Words(5, 6, 7, 8, 9, 10, 11)) }.ToJsonString();
        var want = (await Post(torchCls.Url, "/v1/classify", batch))["data"]!.AsArray();
        var got = (await Post(onnxCls.Url, "/v1/classify", batch))["data"]!.AsArray();
        Assert.Equal(3, got.Count);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal((string)want[i]!["label"]!, (string)got[i]!["label"]!);
            foreach (var name in new[] { "ham", "spam", "eggs" })
                Assert.Equal((double)want[i]!["probabilities"]![name]!, (double)got[i]!["probabilities"]![name]!, 1e-4);
        }

        // Greedy completions: one alone, then prompts of different lengths at once (left-padded in one decoding batch).
        string[] prompts = ["The quick brown fox", "Hello", "Call me Ishmael. Some years ago", "A"];
        string Req(string prompt, int max) => new JsonObject { ["prompt"] = prompt, ["max_tokens"] = max, ["temperature"] = 0 }.ToJsonString();
        var alone = await Post(onnxGpt.Url, "/v1/completions", Req(prompts[0], 12));
        var torchAlone = await Post(torchGpt.Url, "/v1/completions", Req(prompts[0], 12));
        Assert.Equal((string)torchAlone["choices"]![0]!["text"]!, (string)alone["choices"]![0]!["text"]!);
        Assert.Equal(torchAlone["usage"]!.ToJsonString(), alone["usage"]!.ToJsonString());
        var together = await Task.WhenAll(prompts.Select((p, i) => Post(onnxGpt.Url, "/v1/completions", Req(p, 6 + 3 * i))));
        for (int i = 0; i < prompts.Length; i++)
        {
            var solo = await Post(torchGpt.Url, "/v1/completions", Req(prompts[i], 6 + 3 * i));
            Assert.Equal((string)solo["choices"]![0]!["text"]!, (string)together[i]["choices"]![0]!["text"]!);
        }
        // Streaming through the onnx runtime: the same text in chunks, ending with [DONE].
        var sse = await http.PostAsync(onnxGpt.Url + "/v1/completions", JsonBody(new JsonObject { ["prompt"] = prompts[0], ["max_tokens"] = 12, ["temperature"] = 0, ["stream"] = true }.ToJsonString()));
        var events = (await sse.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal((string)torchAlone["choices"]![0]!["text"]!, string.Concat(events.SkipLast(1).Select(e => (string)JsonNode.Parse(e)!["choices"]![0]!["text"]!)));
        // Seeded sampling is reproducible under the onnx runtime too.
        string seeded = new JsonObject { ["prompt"] = "Hello", ["max_tokens"] = 8, ["temperature"] = 0.9, ["top_p"] = 0.9, ["seed"] = 5 }.ToJsonString();
        Assert.Equal((await Post(onnxGpt.Url, "/v1/completions", seeded))["choices"]!.ToJsonString(), (await Post(onnxGpt.Url, "/v1/completions", seeded))["choices"]!.ToJsonString());
        // The card says which runtime serves.
        var card = JsonNode.Parse(await http.GetStringAsync(onnxGpt.Url + "/api/card"))!;
        Assert.Equal("onnx", (string)card["runtime"]!);
        Assert.True((long)card["parameters"]! > 0);

        // Neither onnx server mapped libtorch; both mapped ONNX Runtime (so the check reads the right thing).
        foreach (var p in new[] { onnxCls, onnxGpt })
        {
            string maps = File.ReadAllText($"/proc/{p.Pid}/maps");
            Assert.Contains("libonnxruntime", maps);
            Assert.DoesNotContain("libtorch", maps);
            Assert.DoesNotContain("LibTorchSharp", maps);
        }
    }

    [Fact]
    public async Task The_in_process_api_loads_an_export_with_onnx_runtime_and_says_what_it_cannot_do()
    {
        string cls = ServingFixtures.Bert("bert-cls", ["neg", "neu", "pos"]);
        string onnx = Export(cls);
        using var torch = TaskLMModel.Load(cls);
        using var m = TaskLMModel.Load(onnx);                                                // auto: ONNX Runtime for an export
        Assert.Equal("onnx", m.Card.Runtime);
        Assert.Equal("torch", torch.Card.Runtime);
        Assert.Equal(torch.Labels, m.Labels);
        Assert.True(m.Card.Parameters > 0 && Math.Abs(m.Card.Parameters - torch.Card.Parameters) < torch.Card.Parameters / 100, $"{m.Card.Parameters} vs {torch.Card.Parameters}");
        string[] texts = [ServingFixtures.Words(8, 109), ServingFixtures.Words(400, 401, 402, 403)];
        var a = await torch.ClassifyAsync(texts); var b = await m.ClassifyAsync(texts);
        for (int i = 0; i < texts.Length; i++)
            foreach (var (name, p) in a[i].Probabilities) Assert.Equal(p, b[i].Probabilities[name], 1e-4);
        var e = await Assert.ThrowsAsync<BadRequestException>(() => m.EmbedAsync(texts));
        Assert.Contains("onnx", e.Message);
        var ex = Assert.Throws<InvalidDataException>(() => TaskLMModel.Load(onnx, new TaskLMModelOptions { Runtime = ModelRuntime.Torch }));
        Assert.Contains("--runtime onnx", ex.Message);
    }

    [Fact]
    public async Task Tagging_qa_and_a_gpt2_classifier_through_the_onnx_runtime_match_the_torch_runtime()
    {
        // Exports made in process (the step `tasklm export --format onnx` runs after staging the HF folder).
        static string Onnx(string hf) { string d = Path.Combine(ServingFixtures.TempDir(), "onnx"); TaskLM.Onnx.OnnxExport.Export(hf, d); return d; }
        string tagDir = ServingFixtures.Bert("bert-tok", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]), qaDir = ServingFixtures.Bert("bert-qa"), gptDir = ServingFixtures.Hf("gpt2-cls");
        string[] texts = [ServingFixtures.Words(10, 20, 30), ServingFixtures.Words(373, 33, 321, 742, 932, 5, 6), ServingFixtures.Words(999)];
        using (var t = TaskLMModel.Load(tagDir))
        using (var o = TaskLMModel.Load(Onnx(tagDir)))
        {
            var a = await t.TagAsync(texts); var b = await o.TagAsync(texts);
            for (int i = 0; i < texts.Length; i++)
            {
                Assert.Equal(a[i].Words.Select(w => w.Tag), b[i].Words.Select(w => w.Tag));
                for (int w = 0; w < a[i].Words.Count; w++) Assert.Equal(a[i].Words[w].Score, b[i].Words[w].Score, 1e-4);
                Assert.Equal(a[i].Entities!.Select(e => (e.Type, e.Start, e.End)), b[i].Entities!.Select(e => (e.Type, e.Start, e.End)));
            }
        }
        (string, string)[] qs = [(ServingFixtures.Words(33, 321), ServingFixtures.Words(620, 624, 928, 363)), (ServingFixtures.Words(7), ServingFixtures.Words(8, 9, 10, 11, 12, 13, 14, 15))];
        using (var t = TaskLMModel.Load(qaDir))
        using (var o = TaskLMModel.Load(Onnx(qaDir)))
        {
            var a = await t.AnswerAsync(qs); var b = await o.AnswerAsync(qs);
            for (int i = 0; i < qs.Length; i++)
            {
                Assert.Equal((a[i].Start, a[i].End, a[i].Text), (b[i].Start, b[i].End, b[i].Text));
                Assert.Equal(a[i].Score, b[i].Score, 1e-4);
            }
        }
        // GPT-2 pools its last real token: rows of different lengths in one right-padded batch (texts whose GPT-2
        // tokens fall inside the fixture's 1000-id vocabulary).
        string[] sentences = ["a.b.c", "x;y", "k,l,m,n", "z"];
        using (var t = TaskLMModel.Load(gptDir))
        using (var o = TaskLMModel.Load(Onnx(gptDir)))
        {
            var a = await t.ClassifyAsync(sentences); var b = await o.ClassifyAsync(sentences);
            for (int i = 0; i < sentences.Length; i++)
            {
                Assert.Equal(a[i].Label, b[i].Label);
                foreach (var (name, p) in a[i].Probabilities) Assert.Equal(p, b[i].Probabilities[name], 1e-4);
            }
        }
    }
}
