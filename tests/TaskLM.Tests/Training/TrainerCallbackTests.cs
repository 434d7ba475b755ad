// The loop tells its observers about every checkpoint (OnSave with the folder) and about an interrupt (SIGINT's
// cancellation token): the step finishes, a checkpoint is written, and the loop stops without evaluating.
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
        var t = new Trainer(model, Data(), new Collator("causal-lm", 0, CPU), new BatchPlan(16, 4, 1, true, seed: 3), new AdamW([d, nd]),
            new LrSchedule("linear", 1e-2, 2, steps), new TrainerOptions { TotalSteps = steps, Seed = 3, Interrupt = interrupt });
        var ck = new Checkpoints(run, keepLast: 0, model.SavePretrained);
        t.Saver = ck.Save;
        t.Evaluator = () => new Dictionary<string, double> { ["loss"] = 1 };
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
}
