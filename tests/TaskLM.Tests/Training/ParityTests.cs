// Training parity with Hugging Face: 10 AdamW steps on tiny GPT-2s (train-init) and LoRA logits (lora-base + lora-adapter).
using System.Text.Json.Nodes;
using TaskLM.Models;
using TaskLM.Tasks;
using TaskLM.Training;
using static TorchSharp.torch;

namespace TaskLM.Tests.Training;

public class ParityTests
{
    static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "fixtures", "hf");

    static JsonObject Expected(string name) => JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures, name)))!.AsObject();

    [Fact]
    public void Ten_steps_from_train_init_match_hf_losses_lrs_and_grad_norms()
    {
        // make_fixtures.py train_parity: batches data[s*4:(s+1)*4] in order, labels = input_ids, AdamW(lr 1e-3,
        // wd 0.01 on HF's decay set), linear warmup 2 of 10 steps, clip_grad_norm_(1.0).
        var exp = Expected("train-parity.expected.json");
        var data = exp["data"]!.AsArray().Select(r => new Example { InputIds = r!.AsArray().Select(x => (int)x!).ToArray() }).ToList();
        var model = ModelFactory.FromPretrained(Path.Combine(Fixtures, "train-init"), "causal-lm");
        var (decay, noDecay) = AdamW.HfGroups(model.Module, (double)exp["weight_decay"]!);
        // HF lists the tied lm_head.weight beside transformer.wte.weight; torch (and we) hold that tensor once.
        var hfDecay = exp["decay_param_names"]!.AsArray().Select(x => (string)x!).ToHashSet();
        Assert.Equal(hfDecay.Where(n => n != "lm_head.weight").Order(), decay.Names.Where(n => n != "lm_head.weight").Order());
        Assert.DoesNotContain(noDecay.Names, hfDecay.Contains);
        var opt = new AdamW([decay, noDecay], 0.9, 0.999, 1e-8);
        int steps = (int)exp["steps"]!;
        var trainer = new Trainer(model, data, new Collator("causal-lm", 0, CPU), new BatchPlan(data.Count, (int)exp["batch_size"]!, 1, shuffle: false, seed: 0),
            opt, new LrSchedule("linear", (double)exp["lr"]!, (int)exp["warmup_steps"]!, steps),
            new TrainerOptions { TotalSteps = steps, MaxGradNorm = (double)exp["max_grad_norm"]! });
        var logs = new List<StepLog>();
        trainer.Callbacks.Add(new Collect(logs));
        trainer.Train();
        var losses = exp["losses"]!.AsArray(); var lrs = exp["lrs"]!.AsArray(); var norms = exp["grad_norms"]!.AsArray();
        Assert.Equal(steps, logs.Count);
        for (int i = 0; i < steps; i++)
        {
            Assert.InRange(Math.Abs(logs[i].Loss - (double)losses[i]!), 0, 1e-4);
            Assert.InRange(Math.Abs(logs[i].Lr - (double)lrs[i]!), 0, 1e-12);
            Assert.InRange(Math.Abs(logs[i].GradNorm - (double)norms[i]!), 0, 1e-4 * Math.Max(1, (double)norms[i]!));
        }
        model.Module.eval();
        using var ids = tensor(data[0].InputIds.Select(x => (long)x).ToArray(), [1, data[0].InputIds.Length]);
        var logits = model.Forward(new ModelBatch { InputIds = ids }).Logits!;
        var expRows = exp["final_logits_first_row"]!.AsArray();
        for (int t = 0; t < 2; t++)
            for (int v = 0; v < 1000; v += 97)
                Assert.InRange(Math.Abs(logits[0, t, v].item<float>() - (double)expRows[t]![v]!), 0, 1e-4);
    }

    sealed class Collect(List<StepLog> logs) : ITrainerCallback
    {
        public void OnStep(Trainer t, StepLog log) => logs.Add(log);
    }

    [Fact]
    public void Lora_base_plus_peft_adapter_gives_hf_logits_merges_and_round_trips()
    {
        var exp = Expected("lora.expected.json");
        var idsRow = exp["input_ids"]![0]!.AsArray().Select(x => (long)x!).ToArray();
        using var scope = NewDisposeScope();
        var batch = new ModelBatch { InputIds = tensor(idsRow, [1, idsRow.Length]) };
        var lora = LoraModel.FromAdapter(ModelFactory.FromPretrained(Path.Combine(Fixtures, "lora-base"), "causal-lm"), Path.Combine(Fixtures, "lora-adapter"));
        lora.Module.eval();
        var logits = lora.Forward(batch).Logits!;
        var expLogits = exp["logits"]![0]!.AsArray();
        double maxDiff = 0;
        for (int t = 0; t < idsRow.Length; t++)
        {
            var row = logits[0, t].data<float>().ToArray();
            var er = expLogits[t]!.AsArray();
            for (int v = 0; v < row.Length; v++) maxDiff = Math.Max(maxDiff, Math.Abs(row[v] - (double)er[v]!));
        }
        Assert.True(maxDiff < 1e-4, $"LoRA logits differ from PEFT's by {maxDiff}");

        string dir = Path.Combine(Path.GetTempPath(), "tasklm-lora-parity-" + Guid.NewGuid().ToString("N"));
        try
        {
            lora.SaveAdapter(dir);
            var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!;
            Assert.True((bool)cfg["fan_in_fan_out"]!);
            var back = LoraModel.FromAdapter(ModelFactory.FromPretrained(Path.Combine(Fixtures, "lora-base"), "causal-lm"), dir);
            back.Module.eval();
            Assert.Equal(0.0, (back.Forward(batch).Logits! - logits).abs().max().item<float>());
            var merged = back.MergeAndUnload();
            merged.Module.eval();
            double mergeDiff = (merged.Forward(batch).Logits! - logits).abs().max().item<float>();
            Assert.True(mergeDiff < 1e-5, $"merging changed logits by {mergeDiff}");
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}
