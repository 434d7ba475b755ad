// BERT against Hugging Face: the four heads' logits and losses on HF's fixtures, checkpoint load reports, save/load.
using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using TaskLM.Models;
using TaskLM.Native;
using Xunit.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Tests.Models;

[Collection(SerialCollection.Name)]
public class BertTests
{
    readonly ITestOutputHelper output;

    public BertTests(ITestOutputHelper output)
    {
        this.output = output;
        TorchBackend.EnsureLoaded();
    }

    internal static string Fixture(params string[] parts) => Path.Combine(new[] { AppContext.BaseDirectory, "fixtures", "hf" }.Concat(parts).ToArray());

    internal static JsonObject Expected(string name) => JsonNode.Parse(File.ReadAllText(Fixture(name + ".expected.json")))!.AsObject();

    /// <summary>A nested JSON array of integers as an int64 tensor of its natural shape.</summary>
    internal static Tensor Ints(JsonNode n)
    {
        var rows = n.AsArray();
        if (rows[0] is JsonArray) return stack(rows.Select(r => Ints(r!)).ToArray());
        return tensor(rows.Select(v => v!.GetValue<long>()).ToArray());
    }

    /// <summary>A nested JSON array of numbers flattened, with its shape.</summary>
    static (double[] values, long[] shape) Floats(JsonNode n)
    {
        var values = new List<double>();
        var shape = new List<long>();
        void Walk(JsonNode node, int depth)
        {
            if (node is JsonArray a)
            {
                if (shape.Count == depth) shape.Add(a.Count);
                foreach (var x in a) Walk(x!, depth + 1);
            }
            else values.Add(node.GetValue<double>());
        }
        Walk(n, 0);
        return (values.ToArray(), shape.ToArray());
    }

    void AssertClose(JsonNode expected, Tensor actual, double tol, string what)
    {
        var (values, shape) = Floats(expected);
        Assert.Equal(shape, actual.shape);
        var got = actual.to(ScalarType.Float64).cpu().data<double>().ToArray();
        double worst = values.Zip(got, (e, g) => Math.Abs(e - g)).Max();
        output.WriteLine($"{what}: max |HF - ours| = {worst:E2}");
        Assert.True(worst <= tol, $"{what}: max |HF - ours| = {worst:E3} > {tol:E0}");
    }

    internal static ModelBatch BatchOf(JsonObject e) => new()
    {
        InputIds = Ints(e["input_ids"]!),
        AttentionMask = Ints(e["attention_mask"]!),
        TokenTypeIds = Ints(e["token_type_ids"]!),
        Labels = e["labels"] is JsonNode l ? Ints(l) : null,
        StartPositions = e["start_positions"] is JsonNode s ? Ints(s) : null,
        EndPositions = e["end_positions"] is JsonNode en ? Ints(en) : null,
    };

    [Theory]
    [InlineData("bert-cls", "classification")]
    [InlineData("bert-tok", "token-classification")]
    [InlineData("bert-mlm", "masked-lm")]
    [InlineData("bert-qa", "question-answering")]
    public void HeadMatchesHfLogitsAndLoss(string name, string task)
    {
        using var scope = NewDisposeScope();
        var model = (BertPreTrainedModel)PreTrainedModel.FromPretrained(Fixture(name), task: null, numLabels: null, labels: null, family: BertFamily.Instance);
        model.Module.eval();
        Assert.Equal(task, model.Task); // inferred from config.json's architectures
        Assert.Empty(model.LoadReport!.NewlyInitialised);
        Assert.Empty(model.LoadReport.Unexpected);

        var e = Expected(name);
        using var _ = no_grad();
        // Every row, the padded third one included (HF computes padded positions too: they attend to the real tokens).
        var o = model.Forward(BatchOf(e));
        if (task == "question-answering")
        {
            AssertClose(e["start_logits"]!, o.StartLogits!, 1e-4, "start_logits");
            AssertClose(e["end_logits"]!, o.EndLogits!, 1e-4, "end_logits");
        }
        else AssertClose(e["logits"]!, o.Logits!, 1e-4, "logits");
        // Tied decoder: the word embedding matrix is one parameter (one optimizer entry), not two.
        Assert.Equal(model.Module.state_dict().Count, model.Module.parameters().Count());
        output.WriteLine($"loss: |HF - ours| = {Math.Abs(e["loss"]!.GetValue<double>() - o.Loss!.item<float>()):E2}");
        Assert.True(Math.Abs(e["loss"]!.GetValue<double>() - o.Loss!.item<float>()) <= 1e-5,
            $"loss: HF {e["loss"]} vs ours {o.Loss!.item<float>()}");
    }

    [Fact]
    public void PaddedRowEqualsTheUnpaddedSequence()
    {
        // Padding must not change a sequence's result: HF's logits for the padded row equal what the model
        // gives for the same 9 tokens alone, without padding or mask.
        using var scope = NewDisposeScope();
        var model = (BertPreTrainedModel)PreTrainedModel.FromPretrained(Fixture("bert-cls"), null, null, null, family: BertFamily.Instance);
        model.Module.eval();
        var e = Expected("bert-cls");
        var ids = Ints(e["input_ids"]!)[2].slice(0, 0, 9, 1).unsqueeze(0);
        var tt = Ints(e["token_type_ids"]!)[2].slice(0, 0, 9, 1).unsqueeze(0);
        using var _ = no_grad();
        var o = model.Forward(new ModelBatch { InputIds = ids, TokenTypeIds = tt });
        AssertClose(new JsonArray(e["logits"]![2]!.DeepClone()), o.Logits!, 1e-5, "padded row");
    }

    [Theory]
    [InlineData("bert-cls")]
    [InlineData("bert-tok")]
    [InlineData("bert-mlm")]
    [InlineData("bert-qa")]
    public void SaveWritesHfKeysShapesAndConfigAndLoadsBackBitExactly(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"tasklm-bert-{Guid.NewGuid():N}");
        try
        {
            using var scope = NewDisposeScope();
            var model = (BertPreTrainedModel)PreTrainedModel.FromPretrained(Fixture(name), null, null, null, family: BertFamily.Instance);
            model.SavePretrained(dir);

            // The same tensor names, shapes and dtypes as the file HF's save_pretrained wrote (tied decoder absent).
            Assert.Equal(Header(Fixture(name, "model.safetensors")), Header(Path.Combine(dir, "model.safetensors")));
            // The same config.json content as HF's, key for key.
            var hfConfig = JsonNode.Parse(File.ReadAllText(Fixture(name, "config.json")))!;
            var ours = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!;
            Assert.True(JsonNode.DeepEquals(hfConfig, ours), $"config.json differs:\nHF:   {hfConfig.ToJsonString()}\nours: {ours.ToJsonString()}");

            var back = (BertPreTrainedModel)PreTrainedModel.FromPretrained(dir, null, null, null, family: BertFamily.Instance);
            Assert.Empty(back.LoadReport!.NewlyInitialised);
            var a = model.Module.state_dict();
            var b = back.Module.state_dict();
            Assert.Equal(a.Keys.Order(), b.Keys.Order());
            foreach (var (k, v) in a) Assert.True(v.bytes.SequenceEqual(b[k].bytes), k);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    /// <summary>name → "dtype [shape]" from a safetensors header.</summary>
    static SortedDictionary<string, string> Header(string path)
    {
        using var fs = File.OpenRead(path);
        var len = new byte[8];
        fs.ReadExactly(len);
        var buf = new byte[BitConverter.ToInt64(len)];
        fs.ReadExactly(buf);
        var h = JsonNode.Parse(Encoding.UTF8.GetString(buf))!.AsObject();
        return new(h.Where(kv => kv.Key != "__metadata__")
            .ToDictionary(kv => kv.Key, kv => $"{kv.Value!["dtype"]} {kv.Value!["shape"]!.ToJsonString()}"), StringComparer.Ordinal);
    }

    [Fact]
    public void NewHeadIsReportedAsNewlyInitialisedAsHfSays()
    {
        using var scope = NewDisposeScope();
        // A masked-LM checkpoint loaded for classification: HF reports the pooler and classifier as newly
        // initialised and the MLM head as unused.
        var model = (BertPreTrainedModel)PreTrainedModel.FromPretrained(Fixture("bert-mlm"), "classification", null, ["neg", "neu", "pos"], seed: 1, family: BertFamily.Instance);
        var r = model.LoadReport!;
        Assert.Equal(new[] {"bert.pooler.dense.bias", "bert.pooler.dense.weight", "classifier.bias", "classifier.weight"}, r.NewlyInitialised);
        Assert.Equal(new[] {"cls.predictions.bias", "cls.predictions.transform.LayerNorm.bias", "cls.predictions.transform.LayerNorm.weight",
            "cls.predictions.transform.dense.bias", "cls.predictions.transform.dense.weight"}, r.Unexpected);
        Assert.Contains("newly initialized: [bert.pooler.dense.bias", r.ToString());
        Assert.Equal(new[] {"neg", "neu", "pos"}, model.config.id2label);

        // Initialised as HF's _init_weights: N(0, initializer_range) weights, zero biases.
        var sd = model.Module.state_dict();
        Assert.Equal(new long[] { 3, 32 }, sd["classifier.weight"].shape);
        Assert.Equal(0.0, sd["classifier.bias"].abs().sum().item<float>());
        double std = sd["bert.pooler.dense.weight"].std().item<float>();
        Assert.InRange(std, 0.016, 0.024);

        // A classifier for another number of labels is re-initialised and reported, the body kept.
        var five = (BertPreTrainedModel)PreTrainedModel.FromPretrained(Fixture("bert-cls"), null, numLabels: 5, labels: null, family: BertFamily.Instance);
        Assert.Equal(new[] {"classifier.bias", "classifier.weight"}, five.LoadReport!.NewlyInitialised);
        Assert.Equal(new[] {"classifier.bias", "classifier.weight"}, five.LoadReport.Mismatched);
        Assert.Equal(new long[] { 5, 32 }, five.Module.state_dict()["classifier.weight"].shape);
    }

    [Fact]
    public void LoadsBareBodyCheckpointOldLayerNormNamesAndHalfPrecision()
    {
        // A BertModel checkpoint (keys without "bert."), TF-era LayerNorm gamma/beta names and bf16/fp16
        // tensors, as older and smaller checkpoints on the Hub store them.
        string dir = Path.Combine(Path.GetTempPath(), $"tasklm-bert-{Guid.NewGuid():N}");
        try
        {
            using var scope = NewDisposeScope();
            Directory.CreateDirectory(dir);
            var hf = HfCheckpoint.LoadStateDict(Fixture("bert-tok"));
            var body = new Dictionary<string, Tensor>();
            foreach (var (k, v) in hf.Where(kv => kv.Key.StartsWith("bert.")))
            {
                string key = k["bert.".Length..].Replace("LayerNorm.weight", "LayerNorm.gamma").Replace("LayerNorm.bias", "LayerNorm.beta");
                body[key] = key.Contains("encoder.layer.0") ? v.to(ScalarType.BFloat16) : v.to(ScalarType.Float16);
            }
            SafeTensors.Save(Path.Combine(dir, "model.safetensors"), body);
            var cfg = HfCheckpoint.LoadConfig(Fixture("bert-tok"));
            cfg["architectures"] = new JsonArray("BertModel");
            File.WriteAllText(Path.Combine(dir, "config.json"), cfg.ToJsonString());

            var e = Assert.Throws<ArgumentException>(() => (BertPreTrainedModel)PreTrainedModel.FromPretrained(dir, null, null, null, family: BertFamily.Instance));
            Assert.Contains("choose a task", e.Message);

            var model = (BertPreTrainedModel)PreTrainedModel.FromPretrained(dir, "token-classification", null, null, family: BertFamily.Instance);
            Assert.Equal(new[] {"classifier.bias", "classifier.weight"}, model.LoadReport!.NewlyInitialised);
            Assert.Empty(model.LoadReport.Unexpected);
            var sd = model.Module.state_dict();
            foreach (var (k, v) in body)
            {
                string ours = "bert." + k.Replace("LayerNorm.gamma", "LayerNorm.weight").Replace("LayerNorm.beta", "LayerNorm.bias");
                Assert.Equal(ScalarType.Float32, sd[ours].dtype);
                Assert.True(sd[ours].bytes.SequenceEqual(v.to(ScalarType.Float32).bytes), ours); // exact: half → float is lossless
            }
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void FreshClassifierLearnsATaskThatNeedsAttention()
    {
        // Training mode end to end (dropout, masked attention, pooler, backward): a random tiny BERT must learn
        // whether the token after [CLS] is in the lower half of the vocabulary, with padded rows in the batch.
        manual_seed(3);
        using var scope = NewDisposeScope();
        var model = (BertPreTrainedModel)PreTrainedModel.FromPreset("bert-tiny", "classification", new Dictionary<string, object>
        {
            ["vocab_size"] = 40, ["hidden_size"] = 32, ["num_hidden_layers"] = 1, ["num_attention_heads"] = 2,
            ["max_position_embeddings"] = 16, ["num_labels"] = 2,
        }, seed: 3);
        var ids = randint(4, 40, new long[] { 64, 8 });
        ids[.., 0] = 2; // [CLS]
        var mask = ones(64, 8, ScalarType.Int64);
        for (int i = 0; i < 64; i += 2) { ids[i, 5..] = 0; mask[i, 5..] = 0; } // every other row padded after 5 tokens
        var labels = ids[.., 1].lt(22).to(ScalarType.Int64);
        var batch = new ModelBatch { InputIds = ids, AttentionMask = mask, Labels = labels };
        var opt = optim.AdamW(model.Module.parameters(), lr: 3e-3);
        model.Module.train();
        float first = 0, last = 0;
        int threads = get_num_threads();
        set_num_threads(1); // a model this small gains nothing from more, and loses much on a loaded machine
        try
        {
            for (int step = 0; step < 40; step++)
            {
                using var stepScope = NewDisposeScope();
                opt.zero_grad();
                var loss = model.Forward(batch).Loss!;
                loss.backward();
                opt.step();
                last = loss.item<float>();
                if (step == 0) first = last;
            }
        }
        finally { set_num_threads(threads); }
        model.Module.eval();
        using var _ = no_grad();
        double accuracy = model.Forward(batch).Logits!.argmax(1).eq(labels).to(ScalarType.Float64).mean().item<double>();
        output.WriteLine($"loss {first:F3} → {last:F3}, accuracy {accuracy:P0}");
        Assert.True(last < first / 3, $"loss {first} → {last}");
        Assert.True(accuracy >= 0.95, $"accuracy {accuracy}");
    }

    [Fact]
    public void PresetsHavePublishedShapes()
    {
        using var scope = NewDisposeScope();
        // google/bert_uncased_L-2_H-128_A-2 (bert-tiny): BertModel has 4,385,920 parameters.
        var tiny = (BertPreTrainedModel)PreTrainedModel.FromPreset("bert-tiny", "classification", new Dictionary<string, object> { ["num_labels"] = 3 }, seed: 0);
        long n = tiny.Module.parameters().Sum(p => p.numel());
        Assert.Equal(4_385_920 + 128 * 3 + 3, n);
        Assert.Equal(new[] {"LABEL_0", "LABEL_1", "LABEL_2"}, tiny.config.id2label);
        foreach (var (name, l, h, heads) in new[] { ("bert-mini", 4, 256, 4), ("bert-small", 4, 512, 8), ("bert-medium", 8, 512, 8),
                     ("bert-base", 12, 768, 12), ("bert-large", 24, 1024, 16) })
        {
            var c = BertConfig.FromJson(BertFamily.Instance.PresetConfig(ModelPresets.Get(name), null), $"preset {name}");
            Assert.Equal((l, h, heads, 4 * h), (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size));
        }

        // Overriding hidden_size alone keeps heads = H/64 and intermediate = 4H; a misspelt key names the right one.
        var small = (BertPreTrainedModel)PreTrainedModel.FromPreset("bert-tiny", "masked-lm", new Dictionary<string, object> { ["n_embd"] = 64, ["vocab_size"] = "100" });
        Assert.Equal((1, 256, 100), (small.config.num_attention_heads, small.config.intermediate_size, small.config.vocab_size));
        var odd = (BertPreTrainedModel)PreTrainedModel.FromPreset("bert-tiny", "token-classification", new Dictionary<string, object> { ["hidden_size"] = 48, ["vocab_size"] = 50 });
        Assert.Equal(1, odd.config.num_attention_heads); // 48/64 rounds up to one head, not an error about bert-tiny's two
        // `tasklm train` passes the training data's class names as "labels" (as for GPT-2): they become id2label.
        var tagger = (BertPreTrainedModel)PreTrainedModel.FromPreset("bert-tiny", "token-classification", new Dictionary<string, object> { ["labels"] = new List<string> { "DET", "NOUN", "VERB" } });
        Assert.Equal(new[] { "DET", "NOUN", "VERB" }, tagger.config.id2label);
        var e = Assert.Throws<ArgumentException>(() => (BertPreTrainedModel)PreTrainedModel.FromPreset("bert-tiny", "masked-lm", new Dictionary<string, object> { ["hiden_size"] = 64 }));
        Assert.Contains("did you mean 'hidden_size'", e.Message);
    }

    internal sealed class DisposableBatch(ModelBatch batch) : IDisposable
    {
        public ModelBatch Batch { get; } = batch;
        public void Dispose()
        {
            Batch.InputIds.Dispose(); Batch.AttentionMask?.Dispose(); Batch.TokenTypeIds?.Dispose(); Batch.Labels?.Dispose();
        }
    }
}

/// <summary>Resident memory over a long loop, in a collection of its own that runs alone: the working set is the
/// whole process's, so tests allocating in parallel would blur it.</summary>
[CollectionDefinition("Bert memory (runs alone)", DisableParallelization = true)]
public class BertMemoryCollection { }

[Collection("Bert memory (runs alone)")]
public class BertMemoryTests
{
    readonly ITestOutputHelper output;

    public BertMemoryTests(ITestOutputHelper output)
    {
        this.output = output;
        TorchBackend.EnsureLoaded();
    }

    [Fact]
    public void ThousandForwardPassesKeepMemoryFlat()
    {
        var model = (BertPreTrainedModel)PreTrainedModel.FromPretrained(BertTests.Fixture("bert-cls"), null, null, null, family: BertFamily.Instance);
        model.Module.eval();
        var e = BertTests.Expected("bert-cls");
        using var batch = new BertTests.DisposableBatch(BertTests.BatchOf(e));
        float sink = 0;
        void Loop(int n)
        {
            for (int i = 0; i < n; i++)
            {
                using var scope = NewDisposeScope(); // one scope per forward pass; read the scalar out before it ends
                using var _ = no_grad();
                sink += model.Forward(batch.Batch).Loss!.item<float>();
            }
        }
        // One intra-op thread: this model is far too small to gain from more, and on a loaded 2-core box
        // OpenMP barriers between descheduled threads cost milliseconds per op.
        int threads = get_num_threads();
        set_num_threads(1);
        long before, after, liveBefore, liveAfter;
        var sw = Stopwatch.StartNew();
        try
        {
            Loop(300); // warm-up: JIT, libtorch's and the allocator's pools settle (measured: then flat but for rare ~4 MB heap steps)
            before = WorkingSet();
            liveBefore = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            sw.Restart();
            Loop(1000);
            sw.Stop();
            liveAfter = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            after = WorkingSet();
        }
        finally { set_num_threads(threads); }
        output.WriteLine($"working set {before / 1e6:F1} MB → {after / 1e6:F1} MB over 1,000 forward passes ({sw.Elapsed.TotalMilliseconds / 1000:F2} ms each)");
        output.WriteLine($"live tensors on this thread: {liveBefore} before, {liveAfter} after");
        Assert.True(float.IsFinite(sink));
        Assert.Equal(liveBefore, liveAfter); // every tensor a forward pass makes is disposed by its scope
        Assert.True(after <= before * 1.05, $"working set grew from {before / 1e6:F1} MB to {after / 1e6:F1} MB over 1,000 forward passes");
    }

    static long WorkingSet()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var p = Process.GetCurrentProcess();
        p.Refresh();
        return p.WorkingSet64;
    }
}
