// training.precision: bf16 — bf16 compute with fp32 masters in AdamW: the loss curve stays within bf16's tolerance of
// the fp32 curve, the masters are fp32, the checkpoint loads, and a resumed run continues the same curve.
using System.Text.Json.Nodes;
using TaskLM.Models;
using TaskLM.Recipes;
using TaskLM.Training;
using static TorchSharp.torch;

namespace TaskLM.Tests.Training;

// Alone: the dropout masks and the init come from torch's one global CPU generator, which parallel tests would draw from.
[Collection(SerialCollection.Name)]
public class MixedPrecisionTests
{
    static string Recipe(string dir, string precision, string name, int steps = 30)
    {
        // A deterministic next-token rule (x → 5x+3 mod 64) a 2 x 64 GPT-2 learns fast.
        string data = Path.Combine(dir, "train.jsonl");
        if (!File.Exists(data))
        {
            var rng = new Random(5);
            File.WriteAllLines(data, Enumerable.Range(0, 64).Select(_ =>
            {
                int x = rng.Next(64); var ids = new List<int>();
                for (int i = 0; i < 16; i++) { ids.Add(x); x = (5 * x + 3) % 64; }
                return new JsonObject { ["input_ids"] = new JsonArray(ids.Select(v => (JsonNode)v).ToArray()) }.ToJsonString();
            }));
        }
        return $$"""
            task: causal-lm
            model:
              init: gpt2-tiny
              config: {vocab_size: 64, n_layer: 2, n_head: 2, n_embd: 64, n_positions: 16, resid_pdrop: 0.0, embd_pdrop: 0.0, attn_pdrop: 0.0}
            data: {train: {{data}}, max_length: 16}
            training: {max_steps: {{steps}}, batch_size: 8, lr: 2.0e-3, warmup: 3, save_every: 10, keep_last: 0, eval_every: none, tensorboard: false, precision: {{precision}}}
            output_dir: {{Path.Combine(dir, name)}}
            """;
    }

    static List<double> Losses(string runDir) =>
        File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(j => j["loss"] != null)
            .Select(j => (double)j["loss"]!).ToList();

    sealed class Probe : ITrainerCallback
    {
        public List<(ScalarType param, ScalarType? master, ScalarType moment)> Seen = [];
        public void OnTrainBegin(Trainer t)
        {
            foreach (var b in t.Optimizer.Buckets)
                Seen.Add((b.Params[0].dtype, b.Master?.dtype, t.Optimizer.StateDict()["exp_avg.0"].dtype));
        }
    }

    [Fact]
    public void Bf16_loss_curve_stays_within_bf16_tolerance_of_fp32_with_fp32_masters_and_the_checkpoint_loads_and_resumes()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-bf16-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        int threads = get_num_threads();
        set_num_threads(1);
        try
        {
            TrainingRun.Run(RecipeLoader.Parse(Recipe(dir, "fp32", "fp32")), new RunOptions { TokenizerLoader = null });
            var probe = new Probe();
            var log = new List<string>();
            TrainingRun.Run(RecipeLoader.Parse(Recipe(dir, "bf16", "bf16")), new RunOptions { TokenizerLoader = null, Callbacks = [probe], Say = log.Add });
            Assert.Contains(log, l => l.StartsWith("training.precision: bf16", StringComparison.Ordinal));

            // The parameters compute in bf16; AdamW's masters and moments are fp32.
            Assert.NotEmpty(probe.Seen);
            Assert.All(probe.Seen, s => Assert.Equal((ScalarType.BFloat16, (ScalarType?)ScalarType.Float32, ScalarType.Float32), s));

            var fp32 = Losses(Path.Combine(dir, "fp32"));
            var bf16 = Losses(Path.Combine(dir, "bf16"));
            Assert.Equal(30, fp32.Count);
            Assert.Equal(30, bf16.Count);
            Assert.True(fp32[^1] < 0.6 * fp32[0], $"fp32 did not learn: {fp32[0]:F3} → {fp32[^1]:F3}");
            // bf16 has an 8-bit mantissa (relative rounding 2^-9 ≈ 0.2% per op); over 30 steps the curves may drift apart by a few percent.
            var rel = fp32.Zip(bf16, (a, b) => Math.Abs(a - b) / a).ToList();
            Assert.True(rel.Max() <= 0.03, $"largest relative gap {rel.Max():P2} at step {rel.IndexOf(rel.Max()) + 1}: fp32 {string.Join(" ", fp32.Select(x => x.ToString("F3")))} / bf16 {string.Join(" ", bf16.Select(x => x.ToString("F3")))}");
            Assert.NotEqual(fp32, bf16);   // really another precision

            // The checkpoint is an HF folder that loads (its weights are the bf16 ones) and predicts the rule.
            string ckpt = Path.Combine(dir, "bf16", "checkpoints", "step-30");
            using (var scope = NewDisposeScope())
            {
                var loaded = ModelFactory.FromPretrained(ckpt, "causal-lm", null, null);
                Assert.All(loaded.Module.parameters(), p => Assert.True(isfinite(p).all().item<bool>()));
                var ids = tensor(new long[] { 1, 8, 43, 26, 5, 28, 15, 14 }).unsqueeze(0);   // x → 5x+3 mod 64
                loaded.Module.eval();
                using (no_grad())
                {
                    var o = loaded.Forward(new ModelBatch { InputIds = ids, Labels = ids });
                    Assert.True(o.Loss!.item<float>() < fp32[0] * 0.6);
                }
                loaded.Module.Dispose();
            }

            // A resumed bf16 run continues the uninterrupted curve (the fp32 masters are in the optimizer state).
            var before = bf16;
            TrainingRun.Run(RecipeLoader.Parse(Recipe(dir, "bf16", "bf16")), new RunOptions { TokenizerLoader = null, Resume = Path.Combine(dir, "bf16", "checkpoints", "step-20") });
            var after = Losses(Path.Combine(dir, "bf16"));
            Assert.Equal(before.Count, after.Count);
            for (int i = 20; i < 30; i++) Assert.Equal(before[i], after[i], 5);
        }
        finally
        {
            set_num_threads(threads);
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Auto_precision_chooses_by_this_machines_matmul_rates_trains_in_that_precision_and_records_it()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-bf16-auto-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var probe = new Probe();
            var log = new List<string>();
            TrainingRun.Run(RecipeLoader.Parse(Recipe(dir, "auto", "auto", steps: 2)), new RunOptions { TokenizerLoader = null, Callbacks = [probe], Say = log.Add });
            // One line says the choice and the two rates it came from; the run trains in it and records it, never "auto".
            string line = Assert.Single(log, l => l.StartsWith("training.precision:", StringComparison.Ordinal) && l.Contains("(auto: a "));
            string chosen = line.StartsWith("training.precision: bf16", StringComparison.Ordinal) ? "bf16" : "fp32";
            Assert.StartsWith($"training.precision: {chosen} (", line);
            Assert.All(probe.Seen, s => Assert.Equal(chosen == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32, s.param));
            var resolved = RecipeLoader.Load(Path.Combine(dir, "auto", "recipe.resolved.yaml"));
            Assert.Equal(chosen, resolved.Training.Precision);

            // LoRA keeps fp32 (auto chooses bf16 for full fine-tuning only) and says so.
            log.Clear();
            string lora = Recipe(dir, "auto", "lora", steps: 2).Replace("output_dir:", "strategy: {method: lora, lora: {r: 2, alpha: 4}}\noutput_dir:");
            TrainingRun.Run(RecipeLoader.Parse(lora), new RunOptions { TokenizerLoader = null, Say = log.Add });
            Assert.Contains(log, l => l.StartsWith("training.precision: fp32 (auto chooses bf16 for strategy.method full only", StringComparison.Ordinal));
            Assert.Equal("fp32", RecipeLoader.Load(Path.Combine(dir, "lora", "recipe.resolved.yaml")).Training.Precision);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Precision_is_checked_by_name()
    {
        Assert.Equal("fp32", RecipeLoader.Parse("data: {train: t.jsonl}\n").Training.Precision);
        Assert.Equal("bf16", RecipeLoader.Parse("data: {train: t.jsonl}\ntraining: {precision: bf16}\n").Training.Precision);
        Assert.Equal("auto", RecipeLoader.Parse("data: {train: t.jsonl}\ntraining: {precision: auto}\n").Training.Precision);
        var e = Assert.Throws<RecipeException>(() => RecipeLoader.Parse("data: {train: t.jsonl}\ntraining: {precision: bf61}\n"));
        Assert.Contains("training.precision", e.Message);
        Assert.Contains("did you mean 'bf16'", e.Message);
    }
}
