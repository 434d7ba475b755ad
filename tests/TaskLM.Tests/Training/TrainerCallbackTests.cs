// The loop tells its observers about every checkpoint (OnSave with the folder) and about an interrupt (SIGINT's
// cancellation token): the step finishes, a checkpoint is written, and the loop stops without evaluating. The
// trainer keeps the best metric and step; early stopping only observes them.
using TaskLM.Tasks;
using TaskLM.Training;
using static TorchSharp.torch;

namespace TaskLM.Tests.Training;

[Collection(SerialCollection.Name)]
public class TrainerCallbackTests
{
    static List<Example> Data() => Enumerable.Range(0, 16).Select(i => new Example { InputIds = Enumerable.Range(0, 10).Select(j => (i + 3 * j) % 50).ToArray() }).ToList();

    sealed class Recorder : ITrainerCallback
    {
        public readonly List<string> Saved = [];
        public int Evaluations, Steps;
        public Action<Trainer, StepLog>? Then;
        public void OnStep(Trainer t, StepLog log) { Steps++; Then?.Invoke(t, log); }
        public void OnSave(Trainer t, string dir) => Saved.Add(dir);
        public void OnEvaluate(Trainer t, IReadOnlyDictionary<string, double> metrics) => Evaluations++;
    }

    static (Trainer, Recorder) Make(string run, int steps, CancellationToken interrupt = default)
    {
        var model = new TinyLm(dropout: 0);
        var (d, nd) = AdamW.HfGroups(model.Module, 0.01);
        var ck = new Checkpoints(run, keepLast: 0, model.SavePretrained);
        var t = new Trainer(model, Data(), new Collator("causal-lm", 0, CPU), new BatchPlan(16, 4, 1, true, seed: 3), new AdamW([d, nd]),
            new LrSchedule("linear", 1e-2, 2, steps), new TrainerOptions { TotalSteps = steps, Seed = 3, Interrupt = interrupt },
            evaluator: () => new Dictionary<string, double> { ["loss"] = 1 }, saver: ck.Save);
        t.Callbacks.Add(new ScheduleFlags("4", saveEvery: 4));
        var rec = new Recorder();
        t.Callbacks.Add(rec);
        return (t, rec);
    }

    [Fact]
    public void OnSave_receives_every_checkpoint_folder()
    {
        string run = Path.Combine(Path.GetTempPath(), "tasklm-onsave-" + Guid.NewGuid().ToString("N"));
        try
        {
            var (t, rec) = Make(run, 8);
            t.Train();
            string ck = Path.Combine(run, "checkpoints");
            Assert.Equal([Path.Combine(ck, "step-4"), Path.Combine(ck, "step-8")], rec.Saved);
            Assert.Equal(Path.Combine(ck, "step-8"), t.LastCheckpoint);
            Assert.All(rec.Saved, d => Assert.True(File.Exists(Path.Combine(d, "trainer_state.json"))));
        }
        finally { if (Directory.Exists(run)) Directory.Delete(run, true); }
    }

    [Fact]
    public void An_interrupt_finishes_the_step_writes_a_checkpoint_and_stops_without_evaluating()
    {
        string run = Path.Combine(Path.GetTempPath(), "tasklm-interrupt-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var stop = new CancellationTokenSource();
            var (t, rec) = Make(run, 20, stop.Token);
            rec.Then = (_, log) => { if (log.Step == 6) stop.Cancel(); };   // as the SIGINT handler does, mid-run
            var state = t.Train();
            Assert.Equal(6, state.Step);
            Assert.True(t.Control.Interrupted);
            Assert.Equal("interrupted at step 6", t.Control.StopReason);
            Assert.Equal(Path.Combine(run, "checkpoints", "step-6"), t.LastCheckpoint);
            Assert.Equal(1, rec.Evaluations);   // step 4's; none at the interrupt
            Assert.Equal(6, rec.Steps);
        }
        finally { if (Directory.Exists(run)) Directory.Delete(run, true); }
    }

    [Fact]
    public void The_trainer_keeps_the_best_metric_and_step_and_early_stopping_only_observes_it()
    {
        // Validation loss over six evaluations (one per step): best 2.0 at step 2, then no better by more than 0.1.
        double[] losses = [3.0, 2.0, 2.05, 1.95, 2.5, 2.6];
        var model = new TinyLm(dropout: 0);
        var (d, nd) = AdamW.HfGroups(model.Module, 0.01);
        int calls = 0;
        var t = new Trainer(model, Data(), new Collator("causal-lm", 0, CPU), new BatchPlan(16, 4, 1, true, seed: 3), new AdamW([d, nd]),
            new LrSchedule("linear", 1e-2, 0, 6), new TrainerOptions { TotalSteps = 6, Seed = 3, Best = new BestMetricRule("loss", "auto", MinDelta: 0.1) },
            evaluator: () => new Dictionary<string, double> { ["loss"] = losses[calls++] });
        var newBest = new List<bool>();
        var saved = new List<int>();
        t.Callbacks.Add(new ScheduleFlags("1", saveEvery: 0));
        t.Callbacks.Add(new EarlyStopping(patience: 3, _ => saved.Add(t.State.Step)));
        var rec = new Recorder();
        t.Callbacks.Add(rec);
        t.Callbacks.Add(new FlagProbe(newBest));
        var state = t.Train();
        Assert.Equal([true, true, false, false, false], newBest);   // 1.95 is not 0.1 better than 2.0
        Assert.Equal([1, 2], saved);                               // best/ written at each new best only
        Assert.Equal(2.0, state.BestMetric);
        Assert.Equal(2, state.BestStep);
        Assert.Equal(5, state.Step);                                // stopped after 3 evaluations without improvement
        Assert.StartsWith("early stopping: loss did not improve by more than 0.1 for 3 evaluations", t.Control.StopReason);
    }

    sealed class FlagProbe(List<bool> seen) : ITrainerCallback
    {
        public void OnEvaluate(Trainer t, IReadOnlyDictionary<string, double> metrics) => seen.Add(t.Control.IsNewBest);
    }
}
