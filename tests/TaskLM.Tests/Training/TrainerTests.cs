// Training loop on a tiny model: HF schedule values, decay grouping, accumulation, NaN handling, crash + resume.
using System.Text.Json.Nodes;
using TaskLM.Tasks;
using TaskLM.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Tests.Training;

// Serial: the resume test replays torch's global RNG (dropout), which parallel test classes would also draw from.
[Collection(SerialCollection.Name)]
public class TrainerTests
{
    static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "fixtures", "hf");

    static JsonObject Parity() => JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures, "train-parity.expected.json")))!.AsObject();

    /// <summary>Sequences of a deterministic "next = (3·prev + 1) mod V" language that a bigram model can learn.</summary>
    static List<Example> Data(int n, int len = 12, int vocab = 50, int seed = 0)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ =>
        {
            var ids = new int[len]; ids[0] = rng.Next(vocab);
            for (int i = 1; i < len; i++) ids[i] = (3 * ids[i - 1] + 1) % vocab;
            return new Example { InputIds = ids };
        }).ToList();
    }

    static Trainer Make(TinyLm model, List<Example> data, int batch, int accum, int steps, double lr = 1e-2, int maxBad = 5, bool shuffle = true,
        Func<Trainer, string>? saver = null)
    {
        var (d, nd) = AdamW.HfGroups(model.Module, 0.01);
        var opt = new AdamW([d, nd]);
        var plan = new BatchPlan(data.Count, batch, accum, shuffle, seed: 3);
        return new Trainer(model, data, new Collator("causal-lm", 0, CPU), plan, opt, new LrSchedule("linear", lr, 2, steps),
            new TrainerOptions { TotalSteps = steps, MaxGradNorm = 1.0, MaxBadSteps = maxBad, Seed = 3 }, saver: saver);
    }

    sealed class Recorder : ITrainerCallback
    {
        public readonly List<StepLog> Logs = [];
        public Action<Trainer, StepLog>? Then;
        public void OnStep(Trainer t, StepLog log) { Logs.Add(log); Then?.Invoke(t, log); }
    }

    [Fact]
    public void Linear_warmup_schedule_gives_hf_learning_rates()
    {
        var p = Parity();
        var s = new LrSchedule("linear", (double)p["lr"]!, (int)p["warmup_steps"]!, (int)p["steps"]!);
        var expected = p["lrs"]!.AsArray().Select(x => (double)x!).ToArray();
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], s.LrAt(i), 12);
    }

    [Fact]
    public void Cosine_and_constant_schedules_follow_transformers_formulas()
    {
        // get_cosine_schedule_with_warmup: linear ramp, then 0.5·(1 + cos(π·progress)); ratio warmup = ceil(total·ratio).
        int warm = LrSchedule.WarmupStepsFor(0.06, 100);
        Assert.Equal(6, warm);
        var cos = new LrSchedule("cosine", 1.0, 10, 110);
        Assert.Equal(0.5, cos.LrAt(5), 12);
        Assert.Equal(1.0, cos.LrAt(10), 12);
        Assert.Equal(0.5, cos.LrAt(60), 12);
        Assert.Equal(0.0, cos.LrAt(110), 12);
        var constant = new LrSchedule("constant", 2.0, 4, 50);
        Assert.Equal(1.0, constant.LrAt(2), 12);
        Assert.Equal(2.0, constant.LrAt(49), 12);
    }

    [Fact]
    public void Weight_decay_skips_biases_and_layernorm_weights()
    {
        using var _ = NewDisposeScope();
        var m = new TinyLm();
        var (d, nd) = AdamW.HfGroups(m.Module, 0.01);
        Assert.Equal(["wte.weight", "fc.weight", "lm_head.weight"], d.Names);
        Assert.Equal(["ln_f.weight", "ln_f.bias", "fc.bias", "lm_head.bias"], nd.Names);
    }

    [Fact]
    public void Tiny_model_learns_and_accumulation_matches_a_large_batch()
    {
        // Equal-length sequences: 2 micro-batches of 2 average to exactly the loss and gradient of one batch of 4.
        var data = Data(32);
        var big = new Recorder(); var acc = new Recorder();
        var t1 = Make(new TinyLm(dropout: 0), data, 4, 1, 16, lr: 5e-2); t1.Callbacks.Add(big); t1.Train();
        var t2 = Make(new TinyLm(dropout: 0), data, 2, 2, 16, lr: 5e-2); t2.Callbacks.Add(acc); t2.Train();
        Assert.Equal(16, big.Logs.Count);
        Assert.Equal(16, acc.Logs.Count);
        for (int i = 0; i < 16; i++)
        {
            Assert.InRange(Math.Abs(big.Logs[i].Loss - acc.Logs[i].Loss), 0, 1e-5);
            Assert.InRange(Math.Abs(big.Logs[i].GradNorm - acc.Logs[i].GradNorm), 0, 1e-4);
        }
        // ln(50) ≈ 3.9 at random; the rule is deterministic, so the loss must fall well below that.
        Assert.True(big.Logs[^1].Loss < big.Logs[0].Loss - 1.0, $"loss {big.Logs[0].Loss} → {big.Logs[^1].Loss}");
    }

    [Fact]
    public void Non_finite_steps_are_skipped_and_stop_after_k_in_a_row()
    {
        var rec = new Recorder();
        var m = new TinyLm(dropout: 0);
        var t = Make(m, Data(40), 2, 1, 20, maxBad: 3);
        // From step 2 on, poison a weight: every later loss is NaN.
        rec.Then = (tr, log) => { if (log.Step == 2) using (no_grad()) ((TinyLmModule)m.Module).lm_head.weight!.fill_(double.NaN); };
        t.Callbacks.Add(rec);
        var e = Assert.Throws<InvalidOperationException>(() => t.Train());
        Assert.Contains("3 optimizer steps in a row", e.Message);
        Assert.Equal(3, t.State.SkippedSteps);
        Assert.False(rec.Logs[0].Skipped);
        Assert.True(rec.Logs[2].Skipped && rec.Logs[3].Skipped);
    }

    [Fact]
    public void Resuming_after_a_crash_continues_the_identical_loss_curve()
    {
        // Dropout on, shuffling on: resume must restore weights, AdamW moments, the schedule, torch's RNG and the data position.
        string run = Path.Combine(Path.GetTempPath(), "tasklm-resume-" + Guid.NewGuid().ToString("N"));
        try
        {
            var data = Data(36);
            var full = new Recorder();
            var t0 = Make(new TinyLm(dropout: 0.2), data, 4, 1, 14);
            t0.Callbacks.Add(full); torch.manual_seed(9); t0.Train();

            var first = new Recorder();
            var m1 = new TinyLm(dropout: 0.2);
            var ck = new Checkpoints(run, keepLast: 2, m1.SavePretrained);
            var t1 = Make(m1, data, 4, 1, 14, saver: ck.Save);
            t1.Callbacks.Add(new ScheduleFlags("none", saveEvery: 4));
            first.Then = (_, log) => { if (log.Step == 10) throw new OperationCanceledException("simulated crash"); };
            t1.Callbacks.Add(first);
            torch.manual_seed(9);
            Assert.Throws<OperationCanceledException>(() => t1.Train());
            // step-4 was pruned (keep 2); step-8 is the latest.
            Assert.Equal(["step-4", "step-8"], Checkpoints.List(ck.Folder).Select(d => Path.GetFileName(d)).ToArray());
            string latest = Checkpoints.Latest(run);
            Assert.EndsWith("step-8", latest);

            var m2 = TinyLm.Load(latest);
            var t2 = Make(m2, data, 4, 1, 14);
            Checkpoints.Restore(t2, latest);
            var second = new Recorder();
            t2.Callbacks.Add(second);
            t2.Train();
            Assert.Equal(Enumerable.Range(9, 6), second.Logs.Select(l => l.Step));
            for (int i = 0; i < 6; i++) Assert.Equal(full.Logs[8 + i].Loss, second.Logs[i].Loss, 6);
            Assert.Equal(full.Logs.Take(8).Select(l => l.Loss), first.Logs.Take(8).Select(l => l.Loss));
        }
        finally { if (Directory.Exists(run)) Directory.Delete(run, true); }
    }
}
