// The loop's collaborators: when to evaluate/save, metrics.jsonl + TensorBoard, early stopping with best/.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaskLM.Evaluation;

namespace TaskLM.Training;

/// <summary>Sets ShouldEvaluate every N steps or at each epoch end, and ShouldSave every N steps.</summary>
public sealed class ScheduleFlags(string evalEvery, int saveEvery) : ITrainerCallback
{
    public void OnStep(Trainer t, StepLog log)
    {
        if (int.TryParse(evalEvery, out int n) && n > 0 && log.Step % n == 0) t.Control.ShouldEvaluate = true;
        if (saveEvery > 0 && log.Step % saveEvery == 0) t.Control.ShouldSave = true;
    }

    public void OnEpochEnd(Trainer t, int epoch)
    {
        if (evalEvery == "epoch") t.Control.ShouldEvaluate = true;
    }
}

/// <summary>Appends one <see cref="MetricsLine"/> per optimizer step ({step, epoch, loss, lr, grad_norm, tokens_per_s,
/// rss_mb}) and one per evaluation ({"eval": {...}, "step": N}) to metrics.jsonl, flushed per line; mirrors scalars
/// to TensorBoard.</summary>
public sealed class MetricsLogger : ITrainerCallback, IDisposable
{
    readonly StreamWriter _out;
    readonly TorchSharp.Modules.SummaryWriter? _tb;
    readonly int _logEvery;

    /// <summary>Opens <c>metrics.jsonl</c> in <paramref name="runDir"/>. When resuming from <paramref name="resumeStep"/>,
    /// lines of later steps (written by the interrupted run after its last checkpoint) are dropped first, so the
    /// file shows one continuous curve.</summary>
    public MetricsLogger(string runDir, int logEvery = 1, bool tensorboard = true, int resumeStep = -1)
    {
        string path = Path.Combine(runDir, "metrics.jsonl");
        if (resumeStep >= 0 && File.Exists(path))
        {
            var keep = File.ReadAllLines(path).Where(l =>
            {
                try { return (JsonNode.Parse(l)?["step"]?.GetValue<int>() ?? int.MaxValue) <= resumeStep; }
                catch (JsonException) { return false; }   // a line cut off by the kill
            }).ToList();
            File.WriteAllLines(path, keep);
        }
        else if (resumeStep < 0 && File.Exists(path)) File.Delete(path);
        _out = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read)) { AutoFlush = true };
        _logEvery = Math.Max(1, logEvery);
        if (tensorboard)
        {
            try { _tb = TorchSharp.torch.utils.tensorboard.SummaryWriter(runDir, createRunName: false); }
            catch (Exception) { _tb = null; }   // TensorBoard is a convenience; metrics.jsonl is the record
        }
    }

    public void OnStep(Trainer t, StepLog log)
    {
        if (log.Step % _logEvery != 0 && log.Step != t.Options.TotalSteps) return;
        _out.WriteLine(new MetricsLine
        {
            Step = log.Step, Epoch = Math.Round(log.Epoch, 4), Loss = log.Loss, Lr = log.Lr, GradNorm = log.GradNorm,
            TokensPerS = Math.Round(log.TokensPerSecond, 1),
            // Resident memory of the process: a long run's must stay flat (one dispose scope per step).
            RssMb = Math.Round(Environment.WorkingSet / 1048576.0, 1), Skipped = log.Skipped,
        }.ToJson());
        if (_tb != null)
        {
            if (double.IsFinite(log.Loss)) _tb.add_scalar("train/loss", (float)log.Loss, log.Step);
            _tb.add_scalar("train/lr", (float)log.Lr, log.Step);
            if (double.IsFinite(log.GradNorm)) _tb.add_scalar("train/grad_norm", (float)log.GradNorm, log.Step);
        }
    }

    public void OnEvaluate(Trainer t, IReadOnlyDictionary<string, double> metrics) => LogEval(t.State.Step, metrics);

    /// <summary>One evaluation line {"step", "eval": {...}} (also without a Trainer: strategy.method features).</summary>
    public void LogEval(int step, IReadOnlyDictionary<string, double> metrics)
    {
        _out.WriteLine(new MetricsLine { Step = step, Eval = metrics }.ToJson());
        if (_tb != null)
            foreach (var (k, v) in metrics)
                if (double.IsFinite(v)) _tb.add_scalar($"eval/{k}", (float)v, step);
    }

    public void Dispose() => _out.Dispose();
}

/// <summary>Observes the trainer's best metric (<see cref="TrainerOptions.Best"/>): writes best/ at each evaluation
/// that improved it, and sets ShouldStop after <c>patience</c> evaluations without improvement (null = never stop).</summary>
public sealed class EarlyStopping(int? patience, Action<string>? saveBest) : ITrainerCallback
{
    public void OnEvaluate(Trainer t, IReadOnlyDictionary<string, double> metrics)
    {
        var rule = t.Options.Best ?? throw new InvalidOperationException("early stopping needs TrainerOptions.Best (the metric to watch)");
        var s = t.State;
        if (t.Control.IsNewBest) saveBest?.Invoke(rule.Metric);
        else if (patience is { } p && s.EvalsWithoutImprovement >= p)
        {
            t.Control.ShouldStop = true;
            t.Control.StopReason = $"early stopping: {rule.Metric} did not improve by more than {rule.MinDelta} for {p} evaluations (best {s.BestMetric:G6} at step {s.BestStep})";
        }
    }
}
