// GPT-2 against Hugging Face's own numbers (tests/fixtures/hf): logits, losses, gradients, generation, checkpoints.
using System.Text.Json.Nodes;
using TaskLM.Models;
using TaskLM.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Tests.Models;

[Collection(SerialCollection.Name)]
public class Gpt2Tests
{
    internal static string Fixture(params string[] parts) => Path.Combine(new[] { AppContext.BaseDirectory, "fixtures", "hf" }.Concat(parts).ToArray());
    internal static JsonObject Expected(string name) => JsonNode.Parse(File.ReadAllText(Fixture(name + ".expected.json")))!.AsObject();

    static Gpt2Tests() => TorchBackend.EnsureLoaded();

    internal static Tensor Ids(JsonNode node) =>
        tensor(node.AsArray().SelectMany(r => r!.AsArray().Select(x => x!.GetValue<long>())).ToArray(),
            new long[] { node.AsArray().Count, node[0]!.AsArray().Count }, dtype: int64);

    internal static double[] Flat(JsonNode? node) => node is JsonArray a ? a.SelectMany(Flat).ToArray() : node is null ? throw new ArgumentNullException(nameof(node)) : new[] { node.GetValue<double>() };

    /// <summary>Runs with one intra-op thread: these models are tiny, and on a loaded 2-core box a second
    /// spinning libtorch thread only slows them down.</summary>
    static void OneThread(Action body)
    {
        int threads = get_num_threads();
        set_num_threads(1);
        try { body(); } finally { set_num_threads(threads); }
    }

    static void AssertClose(double[] expected, double[] actual, double tol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        Assert.True(worst <= tol, $"{what}: max |diff| {worst:g3} > {tol:g3}");
    }

    [Fact]
    public void Gpt2TinyMatchesHfLogitsLossGradientsAndGreedyGeneration()
    {
        var exp = Expected("gpt2-tiny");
        var m = (Gpt2)PreTrainedModel.FromPretrained(Fixture("gpt2-tiny"), family: Gpt2Family.Instance);
        Assert.Equal("causal-lm", m.Task);
        Assert.True(m.LoadReport!.IsExact, string.Join("\n", m.LoadReport.Warnings()));
        var ids = Ids(exp["input_ids"]!);
        var o = m.Forward(new ModelBatch { InputIds = ids, Labels = ids });
        AssertClose(Flat(exp["logits_first64"]!), o.Logits!.narrow(2, 0, 64).to(float64).data<double>().ToArray(), 1e-4, "logits[..., :64]");
        Assert.Equal(Flat(exp["logits_argmax"]!).Select(x => (long)x), o.Logits!.argmax(-1).data<long>().ToArray());
        AssertClose(Flat(exp["logits_logsumexp"]!), o.Logits!.logsumexp(-1).to(float64).data<double>().ToArray(), 1e-4, "logsumexp");
        Assert.True(Math.Abs(o.Loss!.item<float>() - exp["loss"]!.GetValue<double>()) <= 1e-5, $"loss {o.Loss!.item<float>()} vs {exp["loss"]}");

        // Gradient norms per parameter (Conv1D norms do not depend on orientation; wte includes the tied head).
        o.Loss!.backward();
        var grads = exp["grad_norms"]!.AsObject();
        var ours = m.Module.named_parameters().ToDictionary(x => x.name, x => x.parameter.grad!.norm().item<float>());
        Assert.Equal(grads.Select(kv => kv.Key).OrderBy(k => k), ours.Keys.OrderBy(k => k));
        foreach (var (name, v) in grads)
        {
            double e = v!.GetValue<double>();
            Assert.True(Math.Abs(ours[name] - e) <= 1e-4 * Math.Abs(e) + 1e-9, $"grad norm {name}: {ours[name]} vs {e}");
        }

        var prompt = Flat(exp["prompt"]![0]!).Select(x => (int)x).ToList();
        var greedy = Flat(exp["greedy"]![0]!).Select(x => (int)x).ToArray();
        var gen = Generation.Generate(m, new[] { prompt }, new GenerationOptions { MaxNewTokens = greedy.Length - prompt.Count, PadTokenId = 0 })[0];
        Assert.Equal(greedy, prompt.Concat(gen).ToArray());
    }

    [Fact]
    public void SquareConv1DIsTransposedOnLoad()
    {
        // c_proj is [n_embd, n_embd]: loading it untransposed raises no shape error, only wrong numbers.
        var exp = Expected("gpt2-bin");
        var m = (Gpt2)PreTrainedModel.FromPretrained(Fixture("gpt2-bin"), family: Gpt2Family.Instance);
        var ids = Ids(exp["input_ids"]!);
        using (no_grad())
            AssertClose(Flat(exp["logits"]!), m.Forward(new ModelBatch { InputIds = ids }).Logits!.to(float64).data<double>().ToArray(), 1e-4, "logits");

        var hf = HfCheckpoint.LoadStateDict(Fixture("gpt2-bin"));
        var raw = hf["transformer.h.0.attn.c_proj.weight"];
        Assert.Equal(raw.shape[0], raw.shape[1]);
        var ourW = m.Module.state_dict()["transformer.h.0.attn.c_proj.weight"];
        Assert.True(ourW.eq(raw.t()).all().item<bool>());
        using (no_grad()) ourW.copy_(raw); // what a plain load_state_dict would do
        using (no_grad())
        {
            var wrong = m.Forward(new ModelBatch { InputIds = ids }).Logits!.to(float64).data<double>().ToArray();
            double worst = Flat(exp["logits"]!).Zip(wrong, (e, a) => Math.Abs(e - a)).Max();
            Assert.True(worst > 1e-3, $"untransposed c_proj should change the logits (max diff {worst})");
        }
    }

    [Fact]
    public void PytorchModelBinLoadsAndMatchesSafetensorsOfTheSameModel()
    {
        // The pickle holds lm_head.weight too (tied: same storage as wte); it must not be reported as unexpected.
        var sd = TorchPickle.LoadStateDict(Fixture("gpt2-bin", "pytorch_model.bin"));
        Assert.True(sd["lm_head.weight"].eq(sd["transformer.wte.weight"]).all().item<bool>());
        Assert.Equal(new long[] { 32, 96 }, sd["transformer.h.0.attn.c_attn.weight"].shape);
        var m = (Gpt2)PreTrainedModel.FromPretrained(Fixture("gpt2-bin"), family: Gpt2Family.Instance);
        Assert.True(m.LoadReport!.IsExact, string.Join("\n", m.LoadReport.Warnings()));
    }

    [Fact]
    public void HalfPrecisionAndShardedCheckpointsLoad()
    {
        // HF's shard layout (model-0000N-of-0000M.safetensors + index weight_map), stored as fp16.
        var exp = Expected("gpt2-bin");
        string dir = Path.Combine(Path.GetTempPath(), $"tasklm-shards-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(dir);
            File.Copy(Fixture("gpt2-bin", "config.json"), Path.Combine(dir, "config.json"));
            var sd = TorchPickle.LoadStateDict(Fixture("gpt2-bin", "pytorch_model.bin"));
            var keys = sd.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
            var map = new JsonObject();
            for (int shard = 0; shard < 2; shard++)
            {
                string file = $"model-0000{shard + 1}-of-00002.safetensors";
                var part = keys.Where((_, i) => i % 2 == shard).ToDictionary(k => k, k => sd[k].to(float16));
                SafeTensors.Save(Path.Combine(dir, file), part);
                foreach (var k in part.Keys) map[k] = file;
            }
            File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = map }.ToJsonString());
            var m = (Gpt2)PreTrainedModel.FromPretrained(dir, family: Gpt2Family.Instance);
            Assert.True(m.LoadReport!.IsExact, string.Join("\n", m.LoadReport.Warnings()));
            Assert.Equal(new[] { "Float16->Float32" }, m.LoadReport.Conversions);
            Assert.Equal(ScalarType.Float32, m.Module.parameters().First().dtype);
            using var _ = no_grad();
            var logits = m.Forward(new ModelBatch { InputIds = Ids(exp["input_ids"]!) }).Logits!.to(float64).data<double>().ToArray();
            AssertClose(Flat(exp["logits"]!), logits, 2e-3, "fp16-rounded weights"); // fp16 keeps ~3 significant digits
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void Gpt2ClsMatchesHfLogitsAndLossPoolingLastNonPadToken()
    {
        var exp = Expected("gpt2-cls");
        var m = ModelFactory.FromPretrained(Fixture("gpt2-cls"));
        Assert.Equal("classification", m.Task);
        using var _ = no_grad();
        var o = m.Forward(new ModelBatch
        {
            InputIds = Ids(exp["input_ids"]!), AttentionMask = Ids(exp["attention_mask"]!),
            Labels = tensor(Flat(exp["labels"]!).Select(x => (long)x).ToArray()),
        });
        AssertClose(Flat(exp["logits"]!), o.Logits!.to(float64).data<double>().ToArray(), 1e-4, "logits");
        Assert.True(Math.Abs(o.Loss!.item<float>() - exp["loss"]!.GetValue<double>()) <= 1e-5);
    }

    [Fact]
    public void NewHeadIsReportedNewlyInitialisedAsHfWarns()
    {
        var m = (Gpt2)ModelFactory.FromPretrained(Fixture("gpt2-bin"), "classification", labels: new[] { "ham", "spam" });
        Assert.Equal(new[] { "score.weight" }, m.LoadReport!.NewlyInitialised);
        Assert.Empty(m.LoadReport.Unexpected); // lm_head.weight is the tied wte, not unexpected
        Assert.Contains("score.weight", m.LoadReport.Warnings().Single());
        Assert.Equal("spam", m.Config["id2label"]!["1"]!.GetValue<string>());

        var tok = (Gpt2)ModelFactory.FromPretrained(Fixture("gpt2-cls"), "token-classification", numLabels: 5);
        Assert.Equal(new[] { "classifier.bias", "classifier.weight" }, tok.LoadReport!.NewlyInitialised);
        Assert.Equal(new[] { "score.weight" }, tok.LoadReport.Unexpected);
    }

    [Theory]
    [InlineData("gpt2-tiny")]
    [InlineData("gpt2-cls")]
    public void SavedFolderHasHfKeysShapesAndBytesAndReloadsBitExactly(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"tasklm-gpt2-{Guid.NewGuid():N}");
        try
        {
            var m = ModelFactory.FromPretrained(Fixture(name));
            m.SavePretrained(dir);
            // Same keys, shapes, dtypes and bytes as HF's own save (HF omits the tied lm_head.weight).
            var hf = SafeTensors.Load(Fixture(name, "model.safetensors"));
            var ours = SafeTensors.Load(Path.Combine(dir, "model.safetensors"), out var meta);
            Assert.Equal("pt", meta["format"]);
            Assert.Equal(hf.Keys.OrderBy(k => k, StringComparer.Ordinal), ours.Keys.OrderBy(k => k, StringComparer.Ordinal));
            foreach (var (k, v) in hf)
            {
                Assert.Equal(v.shape, ours[k].shape);
                Assert.True(v.bytes.SequenceEqual(ours[k].bytes), k);
            }
            var cfgHf = HfCheckpoint.LoadConfig(Fixture(name));
            var cfgOurs = HfCheckpoint.LoadConfig(dir);
            foreach (var key in new[] { "model_type", "architectures", "n_embd", "n_layer", "n_head", "vocab_size", "n_positions", "pad_token_id", "id2label", "tie_word_embeddings", "activation_function" })
                Assert.True(JsonNode.DeepEquals(cfgHf[key], cfgOurs[key]), $"config {key}: {cfgHf[key]?.ToJsonString()} vs {cfgOurs[key]?.ToJsonString()}");

            var back = ModelFactory.FromPretrained(dir);
            var a = m.Module.state_dict();
            foreach (var (k, v) in back.Module.state_dict())
                Assert.True(v.bytes.SequenceEqual(a[k].bytes), k);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void KvCacheGenerationEqualsFullRecomputation()
    {
        OneThread(() =>
        {
            var m = (Gpt2)PreTrainedModel.FromPretrained(Fixture("lora-base"), family: Gpt2Family.Instance);
            var prompts = new[] { new[] { 5, 17, 300, 42 }, new[] { 9, 8 } };
            foreach (var sample in new[] { false, true })
            {
                GenerationOptions Opts(bool cache) => new()
                {
                    MaxNewTokens = 20, DoSample = sample, TopK = 50, TopP = 0.95, Temperature = 0.8, Seed = 3,
                    RepetitionPenalty = 1.2, EosTokenId = -1, UseCache = cache,
                };
                var withCache = Generation.Generate(m, prompts, Opts(true));
                var without = Generation.Generate(m, prompts, Opts(false));
                Assert.Equal(without, withCache);
                Assert.All(withCache, r => Assert.Equal(20, r.Length));
            }
        });
    }

    [Fact]
    public void LeftPaddedBatchGenerationEqualsOneByOne()
    {
        OneThread(() =>
        {
            var m = (Gpt2)PreTrainedModel.FromPretrained(Fixture("lora-base"), family: Gpt2Family.Instance);
            var prompts = new[] { new[] { 11, 500, 7 }, new[] { 3, 99, 250, 600, 12, 1 }, new[] { 42 } };
            var opts = new GenerationOptions { MaxNewTokens = 10, EosTokenId = -1, PadTokenId = 0 };
            var batch = Generation.Generate(m, prompts, opts);
            for (int i = 0; i < prompts.Length; i++)
                Assert.Equal(Generation.Generate(m, new[] { prompts[i] }, opts)[0], batch[i]);
            // Streaming reports every token of every row as it is chosen.
            var streamed = prompts.Select(_ => new List<int>()).ToArray();
            Generation.Generate(m, prompts, opts, onToken: (r, t) => streamed[r].Add(t));
            Assert.Equal(batch, streamed.Select(s => s.ToArray()).ToList());
        });
    }

    [Fact]
    public void GenerationStopsAtEosAndStopStrings()
    {
        var m = (Gpt2)PreTrainedModel.FromPretrained(Fixture("lora-base"), family: Gpt2Family.Instance);
        var free = Generation.Generate(m, new[] { new[] { 5, 6, 7 } }, new GenerationOptions { MaxNewTokens = 8, EosTokenId = -1 })[0];
        // Declaring the 3rd generated token the EOS stops right there, EOS included (as HF returns it).
        var stopped = Generation.Generate(m, new[] { new[] { 5, 6, 7 } }, new GenerationOptions { MaxNewTokens = 8, EosTokenId = free[2] })[0];
        Assert.Equal(free.Take(Array.IndexOf(free, free[2]) + 1), stopped);
        // A stop string (decoding ids as "<id>") ends the row once the text contains it.
        string Decode(IReadOnlyList<int> ids) => string.Concat(ids.Select(i => $"<{i}>"));
        var s = Generation.Generate(m, new[] { new[] { 5, 6, 7 } }, new GenerationOptions { MaxNewTokens = 8, EosTokenId = -1, StopStrings = new[] { $"<{free[1]}>" } }, decode: Decode)[0];
        Assert.Equal(free.Take(Array.IndexOf(free, free[1]) + 1), s);
    }

    [Fact]
    public void PresetsHavePublishedParameterCounts()
    {
        // HF: GPT2Model('gpt2') has 124,439,808 parameters; bert-base-uncased BertModel 109,482,240.
        Assert.Equal(124_439_808, ModelPresets.Get("gpt2").Parameters);
        Assert.Equal(354_823_168, ModelPresets.Get("gpt2-medium").Parameters);
        Assert.Equal(109_482_240, ModelPresets.Get("bert-base").Parameters);
        var tiny = ModelFactory.FromPreset("gpt2-tiny", "causal-lm", new Dictionary<string, object> { ["n_positions"] = 64 });
        var p = ModelPresets.Get("gpt2-tiny") with { MaxPositions = 64 };
        Assert.Equal(p.Parameters, tiny.Module.parameters().Sum(x => x.numel()));
        var ex = Assert.Throws<ArgumentException>(() => ModelFactory.FromPreset("gpt2-tiny", "causal-lm", new Dictionary<string, object> { ["n_layers"] = 3 }));
        Assert.Contains("did you mean 'n_layer'", ex.Message);
    }

    [Fact]
    public void ThousandForwardPassesKeepResidentMemoryFlat()
    {
        var m = (Gpt2)PreTrainedModel.FromPretrained(Fixture("gpt2-bin"), family: Gpt2Family.Instance);
        var ids = randint(0, 512, new long[] { 2, 16 });
        void Step()
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            m.Forward(new ModelBatch { InputIds = ids, Labels = ids }).Loss!.item<float>();
        }
        long before = 0, after = 0;
        OneThread(() =>
        {
            for (int i = 0; i < 100; i++) Step();
            GC.Collect(); GC.WaitForPendingFinalizers();
            before = System.Diagnostics.Process.GetCurrentProcess().WorkingSet64;
            for (int i = 0; i < 1000; i++) Step();
            GC.Collect(); GC.WaitForPendingFinalizers();
            after = System.Diagnostics.Process.GetCurrentProcess().WorkingSet64;
        });
        Assert.True(after <= before * 1.03 + (4 << 20), $"resident memory grew from {before >> 20} MiB to {after >> 20} MiB");
    }
}
