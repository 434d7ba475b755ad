// The Llama family's own contracts: HF names on disk, save/load, grouped-query attention as repeated key/value heads,
// the KV cache and left-padded batches against full recomputation, the classification head's pooling, LoRA targets,
// gradient checkpointing, bf16, the preset table. (Its forward pass is checked against llama.cpp in GgufLlamaCppTests.)
using System.Text.Json.Nodes;
using TaskLM.Models;
using TaskLM.Native;
using static TorchSharp.torch;

namespace TaskLM.Tests.Models;

[Collection(SerialCollection.Name)]   // torch's global generator draws the init
public sealed class LlamaTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("tasklm-llama").FullName;

    readonly Xunit.Abstractions.ITestOutputHelper _out;

    static LlamaTests() => TorchBackend.EnsureLoaded();

    public LlamaTests(Xunit.Abstractions.ITestOutputHelper output) => _out = output;

    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    static Dictionary<string, object> Small(int kvHeads = 2, string type = "llama") => new()
    {
        ["model_type"] = type, ["vocab_size"] = 96, ["hidden_size"] = 32, ["intermediate_size"] = 48, ["num_hidden_layers"] = 2,
        ["num_attention_heads"] = 4, ["num_key_value_heads"] = kvHeads, ["max_position_embeddings"] = 64, ["initializer_range"] = 0.1,
        ["pad_token_id"] = 0, ["eos_token_id"] = 1, ["bos_token_id"] = 2,
    };

    static Tensor Ids(params long[][] rows) => tensor(rows.SelectMany(r => r).ToArray(), [rows.Length, rows[0].Length]);

    static float[] Logits(ITaskModel m, Tensor ids, Tensor? mask = null)
    {
        using var _ = no_grad();
        return m.Forward(new ModelBatch { InputIds = ids, AttentionMask = mask }).Logits!.to(ScalarType.Float32).contiguous().data<float>().ToArray();
    }

    static double MaxDiff(float[] a, float[] b) => a.Zip(b, (x, y) => (double)Math.Abs(x - y)).Max();

    [Fact]
    public void Parameters_carry_hugging_faces_names_and_a_saved_folder_loads_back_identically()
    {
        var m = PreTrainedModel.FromPreset("llama-tiny", "causal-lm", Small(), seed: 1);
        var names = m.named_parameters().Select(p => p.name).ToHashSet();
        foreach (var n in new[]
        {
            "model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
            "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight", "model.layers.1.mlp.gate_proj.weight",
            "model.layers.1.mlp.up_proj.weight", "model.layers.1.mlp.down_proj.weight", "model.layers.1.input_layernorm.weight",
            "model.layers.1.post_attention_layernorm.weight", "model.norm.weight",
        })
            Assert.Contains(n, names);
        Assert.DoesNotContain("lm_head.weight", names);                       // tied (the presets tie, as SmolLM2)
        Assert.Equal([16L, 32L], m.named_parameters().First(p => p.name.EndsWith("0.self_attn.k_proj.weight")).parameter.shape); // (n_kv·hd, C) = (16, 32)
        Assert.DoesNotContain(names, n => n.EndsWith(".bias"));

        string folder = Path.Combine(_dir, "m");
        m.SavePretrained(folder);
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
        Assert.Equal("llama", (string)cfg["model_type"]!);
        Assert.Equal("LlamaForCausalLM", (string)cfg["architectures"]![0]!);
        Assert.Equal(2, (int)cfg["num_key_value_heads"]!);
        var loaded = ModelFactory.ForInference(folder);
        Assert.IsType<LlamaForCausalLM>(loaded);
        var ids = Ids([5, 9, 17, 3, 44, 8]);
        Assert.Equal(Logits(m, ids), Logits(loaded, ids));
    }

    [Fact]
    public void Qwen2_has_qkv_bias_and_its_own_class_names()
    {
        var m = (Llama)PreTrainedModel.FromPreset("llama-tiny", "causal-lm", Small(type: "qwen2"), seed: 1);
        var names = m.named_parameters().Select(p => p.name).ToHashSet();
        Assert.Contains("model.layers.0.self_attn.q_proj.bias", names);
        Assert.Contains("model.layers.0.self_attn.v_proj.bias", names);
        Assert.DoesNotContain("model.layers.0.self_attn.o_proj.bias", names);
        Assert.Equal("Qwen2ForCausalLM", m.Architecture);
        Assert.Same(LlamaFamily.Qwen2, ModelFamilies.Find("qwen2"));
        Assert.Equal("MistralForSequenceClassification", LlamaFamily.Mistral.Architectures["classification"]);
    }

    [Fact]
    public void Grouped_query_attention_equals_multi_head_attention_with_each_kv_head_repeated()
    {
        // HF's repeat_kv: query head h reads key/value head h / (n_heads / n_kv). A 4-head MHA model whose k/v rows are the
        // GQA model's 2 kv heads, each repeated twice, must give the same logits.
        var gqa = PreTrainedModel.FromPreset("llama-tiny", "causal-lm", Small(kvHeads: 2), seed: 3);
        var mha = PreTrainedModel.FromPreset("llama-tiny", "causal-lm", Small(kvHeads: 4), seed: 4);
        var g = gqa.state_dict();
        using (no_grad())
            foreach (var (name, p) in mha.named_parameters())
            {
                var src = g[name];
                if (name.EndsWith("k_proj.weight") || name.EndsWith("v_proj.weight"))
                    src = src.view(2, 1, 8, 32).expand(2, 2, 8, 32).reshape(32, 32);   // (n_kv, rep, hd, C) → (n_heads·hd, C)
                p.copy_(src);
            }
        var ids = Ids([5, 9, 17, 3, 44, 8, 60, 2]);
        Assert.True(MaxDiff(Logits(gqa, ids), Logits(mha, ids)) < 1e-5);
        // and a GQA model is not the MHA one with kv heads taken in another order (the test can tell).
        using (no_grad())
            foreach (var (name, p) in mha.named_parameters())
                if (name.EndsWith("k_proj.weight")) p.copy_(g[name].view(2, 8, 32).repeat(2, 1, 1).reshape(32, 32));
        Assert.True(MaxDiff(Logits(gqa, ids), Logits(mha, ids)) > 1e-3);
    }

    [Fact]
    public void Cached_and_left_padded_generation_equals_recomputing_the_whole_sequence()
    {
        var m = PreTrainedModel.FromPreset("llama-tiny", "causal-lm", Small(), seed: 5);
        int[] a = [5, 9, 17, 3, 44], b = [7, 8];
        var o = new GenerationOptions { MaxNewTokens = 10, EosTokenId = -1 };
        var cached = Generation.Generate(m, [a, b], o);                                         // one batch, b left-padded
        var plainA = Generation.Generate(m, [a], new GenerationOptions { MaxNewTokens = 10, EosTokenId = -1, UseCache = false })[0];
        var plainB = Generation.Generate(m, [b], new GenerationOptions { MaxNewTokens = 10, EosTokenId = -1, UseCache = false })[0];
        Assert.Equal(plainA, cached[0]);
        Assert.Equal(plainB, cached[1]);

        // The logits of a whole sequence at once equal those of a prefix run, then the rest through the KV cache.
        var lm = (LlamaForCausalLM)m;
        using var _ = no_grad();
        var full = lm.Logits(Ids([5, 9, 17, 3, 44, 8, 60]));
        using var cache = lm.NewKvCache(1, 16);
        Assert.Equal(2, cache.KvHeads);
        lm.Logits(Ids([5, 9, 17, 3]), cache: cache);
        var rest = lm.Logits(Ids([44, 8, 60]), cache: cache);
        Assert.True(MaxDiff(full.narrow(1, 4, 3).contiguous().data<float>().ToArray(), rest.contiguous().data<float>().ToArray()) < 1e-5);
    }

    [Fact]
    public void Sequence_classification_pools_the_last_non_pad_token()
    {
        var m = PreTrainedModel.FromPreset("llama-tiny", "classification", new Dictionary<string, object>(Small()) { ["num_labels"] = 3 }, seed: 6);
        Assert.Equal("LlamaForSequenceClassification", m.Architecture);
        var alone = Logits(m, Ids([5, 9, 17]));
        var padded = Logits(m, Ids([5, 9, 17, 0, 0], [4, 4, 4, 4, 4]), Ids([1, 1, 1, 0, 0], [1, 1, 1, 1, 1]));
        Assert.Equal(6, padded.Length);
        Assert.True(MaxDiff(alone, padded[..3]) < 1e-5);
        var loss = m.Forward(new ModelBatch { InputIds = Ids([5, 9, 17]), Labels = tensor(new long[] { 2 }) }).Loss!;
        Assert.True(loss.item<float>() > 0);
    }

    [Fact]
    public void LoRA_targets_every_projection_and_trains_only_its_matrices()
    {
        var m = PreTrainedModel.FromPreset("llama-tiny", "causal-lm", Small(), seed: 7);
        Assert.Equal(["q_proj", "v_proj"], LoraConfig.DefaultTargets("llama"));
        var targets = new[] { "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj" };
        var lora = new LoraModel(m, new LoraConfig(4, 8, 0.0, targets));
        var trainable = lora.Module.named_parameters().Select(p => p.name).ToList();
        Assert.Equal(2 * 7 * 2, trainable.Count);   // 2 layers x 7 targets x (A, B)
        var ids = Ids([5, 9, 17, 3, 44, 8]);
        var before = Logits(m, ids);
        Assert.Equal(before, Logits(lora, ids));    // B starts at zero
        lora.Module.train();
        var loss = lora.Forward(new ModelBatch { InputIds = ids, Labels = ids }).Loss!;
        loss.backward();
        Assert.All(lora.Module.parameters(), p => Assert.NotNull(p.grad));
        Assert.All(m.parameters(), p => Assert.False(p.requires_grad));
    }

    [Fact]
    public void Gradient_checkpointing_gives_the_same_gradients_and_bf16_runs()
    {
        var plain = PreTrainedModel.FromPreset("llama-tiny", "causal-lm", Small(), seed: 8);
        var ckpt = PreTrainedModel.FromPreset("llama-tiny", "causal-lm", Small(), seed: 8);
        ckpt.load_state_dict(plain.state_dict());
        Assert.Equal(1, ActivationCheckpoint.Enable(ckpt));
        var ids = Ids([5, 9, 17, 3, 44, 8], [7, 7, 2, 1, 0, 0]);
        var batch = new ModelBatch { InputIds = ids, AttentionMask = Ids([1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]), Labels = ids };
        Assert.Equal(Logits(plain, ids), Logits(ckpt, ids));   // the same weights
        var losses = new List<float>();
        foreach (var model in new[] { plain, ckpt }) { model.train(); var l = model.Forward(batch).Loss!; losses.Add(l.item<float>()); l.backward(); }
        Assert.Equal(losses[0], losses[1], 5);
        var g0 = plain.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!);
        var bad = new List<string>();
        foreach (var (name, p) in ckpt.named_parameters())
        {
            float diff = (p.grad! - g0[name]).abs().max().item<float>(), scale = g0[name].abs().max().item<float>();
            if (!(diff <= 1e-5 * scale)) bad.Add($"{name}: gradients differ by {diff} (max |grad| {scale})");
        }
        Assert.True(bad.Count == 0, string.Join("\n", bad));

        var bf = PreTrainedModel.FromPreset("llama-tiny", "causal-lm", Small(), seed: 8);
        bf.load_state_dict(plain.state_dict());
        foreach (var t in TaskLM.Training.MixedPrecision.CastToBf16(bf).Values) t.Dispose();   // training.precision: bf16
        bf.eval();
        var l16 = Logits(bf, Ids([5, 9, 17, 3]).to(int64));
        plain.eval();
        var l32 = Logits(plain, Ids([5, 9, 17, 3]));
        Assert.True(MaxDiff(l16, l32) < 0.1, $"bf16 logits {MaxDiff(l16, l32)} off");
    }

    [Fact]
    public void Presets_count_parameters_as_the_model_builds_them()
    {
        // SmolLM2-135M: 134,515,008 parameters (HF's num_parameters(); lm_head tied to embed_tokens).
        Assert.Equal(134_515_008, ModelPresets.Get("smollm2-135m").Parameters);
        // Qwen2.5-0.5B: 494,032,768 (tied, q/k/v biases); Mistral-7B-v0.1: 7,241,732,096 with its untied lm_head (4096 x 32000).
        Assert.Equal(494_032_768, ModelPresets.Get("qwen2.5-0.5b").Parameters);
        Assert.Equal(7_241_732_096 - 4096L * 32000, ModelPresets.Get("mistral-7b").Parameters);
        var tiny = ModelPresets.Get("llama-tiny");
        var m = PreTrainedModel.FromPreset("llama-tiny", "causal-lm");
        Assert.Equal(tiny.Parameters, m.parameters().Sum(p => p.numel()));
        Assert.InRange(tiny.Parameters, 800_000, 1_200_000);
        var cfg = tiny.Family.PresetConfig(tiny, null);
        Assert.Equal(2, (int)cfg["num_key_value_heads"]!);
        Assert.Equal(100000.0, (double)LlamaFamily.Instance.PresetConfig(ModelPresets.Get("smollm2-135m"), null)["rope_theta"]!);
    }

    [Fact]
    public void Rope_scaling_follows_llama3_and_linear_and_refuses_the_rest()
    {
        var c = LlamaConfig.FromJson(new JsonObject { ["hidden_size"] = 64, ["num_attention_heads"] = 2, ["rope_theta"] = 500000.0 });
        var plain = Rope.InverseFrequencies(c);
        Assert.Equal(1.0, plain[0]);
        Assert.Equal(Math.Pow(500000.0, -2.0 / 32), plain[1], 12);
        var linear = Rope.InverseFrequencies(LlamaConfig.FromJson(new JsonObject
        { ["hidden_size"] = 64, ["num_attention_heads"] = 2, ["rope_theta"] = 500000.0, ["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = 4.0 } }));
        Assert.Equal(plain.Select(x => x / 4), linear);
        var l3 = Rope.InverseFrequencies(LlamaConfig.FromJson(new JsonObject
        {
            ["hidden_size"] = 64, ["num_attention_heads"] = 2, ["rope_theta"] = 500000.0,
            ["rope_scaling"] = new JsonObject { ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 8192 },
        }));
        Assert.Equal(plain[0], l3[0]);                   // short wavelength (2π < 8192/4): kept
        Assert.Equal(plain[^1] / 8, l3[^1], 15);         // long wavelength (> 8192): slowed by factor
        var ex = Assert.Throws<NotSupportedException>(() => LlamaConfig.FromJson(new JsonObject
        { ["hidden_size"] = 64, ["num_attention_heads"] = 2, ["rope_scaling"] = new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0 } }, "x/config.json"));
        Assert.Contains("x/config.json", ex.Message);
        Assert.Contains("yarn", ex.Message);
    }

    /// <summary>`tasklm train` on llama-tiny: a deterministic next-token rule (x → 5x + 3 mod 64) that a 2-layer model
    /// learns in a few dozen steps, fully and with LoRA on every projection; the run's model generates the rule.</summary>
    [Theory]
    [InlineData("full", 0.5)]
    [InlineData("lora", 3.6)]
    public void Train_learns_a_sequence_rule_and_the_run_generates_it(string method, double maxFinalLoss)
    {
        var rng = new Random(5);
        var lines = Enumerable.Range(0, 64).Select(_ =>
        {
            int x = rng.Next(64); var ids = new List<int>();
            for (int i = 0; i < 16; i++) { ids.Add(x); x = (5 * x + 3) % 64; }
            return new JsonObject { ["input_ids"] = new JsonArray(ids.Select(v => (JsonNode)v).ToArray()) }.ToJsonString();
        }).ToList();
        File.WriteAllLines(Path.Combine(_dir, "train.jsonl"), lines.Skip(8));
        File.WriteAllLines(Path.Combine(_dir, "val.jsonl"), lines.Take(8));
        string strategy = method == "lora"
            ? "strategy: {method: lora, lora: {r: 8, alpha: 16, dropout: 0.0, target_modules: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]}}"
            : "strategy: {method: full}";
        string checkpointing = method == "full" ? ", gradient_checkpointing: true" : "";
        File.WriteAllText(Path.Combine(_dir, "llama.yaml"), $$"""
            task: causal-lm
            model:
              init: llama-tiny
              config: {vocab_size: 64, hidden_size: 64, intermediate_size: 128, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 32, bos_token_id: 0, eos_token_id: 1}
            data: {train: train.jsonl, validation: val.jsonl, max_length: 16}
            {{strategy}}
            training: {max_steps: 80, batch_size: 8, lr: 1.0e-2, warmup: 0.1, eval_every: 40, tensorboard: false{{checkpointing}}}
            """);
        string run = Path.Combine(_dir, "run-" + method);
        var r = CliRunner.Run(["train", "llama.yaml", "output_dir=" + run, "--threads", "2"], workingDirectory: _dir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var evals = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!)
            .Where(j => j["eval"]?["loss"] != null).Select(j => (double)j["eval"]!["loss"]!).ToList();
        _out.WriteLine($"{method}: eval loss {string.Join(" → ", evals.Select(e => e.ToString("F3")))} (ln 64 = {Math.Log(64):F2})");
        Assert.True(evals.Count >= 2, "two evaluations expected");
        Assert.True(evals[^1] < maxFinalLoss && evals[^1] < Math.Log(64) - 0.5, $"eval loss {string.Join(" → ", evals)} (ln 64 = {Math.Log(64):F2})");
        if (method == "full")
        {
            // The run's best/ continues the rule greedily: 7 → 38 → 1 → 8 ...
            var gen = CliRunner.Run(["generate", "--model", run, "--prompt-ids", "7,38,1,8", "--greedy", "--max-new-tokens", "4", "--json"], workingDirectory: _dir);
            Assert.True(gen.ExitCode == 0, gen.Stderr);
            var newIds = JsonNode.Parse(gen.Stdout)!["new_ids"]!.AsArray().Select(x => (int)x!).ToArray();
            Assert.Equal([43, 26, 5, 28], newIds);
        }
    }
}
