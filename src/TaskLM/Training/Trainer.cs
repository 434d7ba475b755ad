// The training loop: one optimizer step per iteration; logging, evaluation, early stopping and checkpoints are
// collaborators that observe the loop and set flags on TrainerControl (as HF's TrainerCallback/TrainerControl).
using System.Diagnostics;
using TaskLM.Distributed;
using TaskLM.Models;
using TaskLM.Tasks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TaskLM.Training;

/// <summary>Settings of the loop itself (the recipe's training section, resolved to numbers).</summary>
public sealed class TrainerOptions
{
    public int TotalSteps { get; init; }
    public double MaxGradNorm { get; init; } = 1.0;
    public double LabelSmoothing { get; init; }
    /// <summary>(C,) loss weights per class, or null.</summary>
    public float[]? ClassWeights { get; init; }
    public int MaxBadSteps { get; init; } = 5;
    public int Seed { get; init; } = 42;
    /// <summary>Cancelled to stop after the current step with a checkpoint (SIGINT/SIGTERM).</summary>
    public CancellationToken Interrupt { get; init; }
    /// <summary>The evaluation metric whose best value and step the trainer keeps (HF's metric_for_best_model), or null.</summary>
    public BestMetricRule? Best { get; init; }
}

/// <summary>Which evaluation metric is "best" and in which direction; an improvement must exceed <paramref name="MinDelta"/>.</summary>
public sealed record BestMetricRule(string Metric, string Mode, double MinDelta = 0)
{
    /// <summary>"min" or "max"; "auto" is min for loss/perplexity, max otherwise.</summary>
    public string Mode { get; } = ResolveMode(Metric, Mode);

    public static string ResolveMode(string metric, string mode) =>
        mode == "auto" ? (metric.Contains("loss") || metric.Contains("perplexity") ? "min" : "max") : mode;

    /// <summary>True when <paramref name="value"/> beats <paramref name="best"/> (or there is none yet).</summary>
    public bool Improves(double value, double? best) =>
        best is not { } b || (Mode == "min" ? value < b - MinDelta : value > b + MinDelta);
}

/// <summary>What one optimizer step did (one metrics.jsonl line).</summary>
public sealed record StepLog(int Step, double Epoch, double Loss, double Lr, double GradNorm, double TokensPerSecond, bool Skipped);

/// <summary>Flags collaborators set; the loop acts on them after each step.</summary>
public sealed class TrainerControl
{
    public bool ShouldEvaluate { get; set; }
    public bool ShouldSave { get; set; }
    public bool ShouldStop { get; set; }
    /// <summary>Why training stopped early (early stopping), for the report.</summary>
    public string? StopReason { get; set; }
    /// <summary>Set by the loop when <see cref="TrainerOptions.Interrupt"/> stopped it (a checkpoint was written).</summary>
    public bool Interrupted { get; internal set; }
    /// <summary>Set by the loop at an evaluation that improved <see cref="TrainerOptions.Best"/> (the step is the new best).</summary>
    public bool IsNewBest { get; internal set; }
}

/// <summary>The loop's progress, checkpointed with the weights so a resumed run continues exactly.</summary>
public sealed class TrainerState
{
    public int Step { get; set; }
    public int Epoch { get; set; }
    public int BatchInEpoch { get; set; }
    public int BadStepsInARow { get; set; }
    public int SkippedSteps { get; set; }
    public double? BestMetric { get; set; }
    public int BestStep { get; set; }
    public int EvalsWithoutImprovement { get; set; }
    public long TokensSeen { get; set; }
}

/// <summary>Observes the loop. Every method has an empty default; override what you need.</summary>
public interface ITrainerCallback
{
    void OnTrainBegin(Trainer t) { }
    void OnStep(Trainer t, StepLog log) { }
    void OnEpochEnd(Trainer t, int epoch) { }
    void OnEvaluate(Trainer t, IReadOnlyDictionary<string, double> metrics) { }
    void OnSave(Trainer t, string checkpointDir) { }
    void OnTrainEnd(Trainer t) { }
}

/// <summary>Trains an <see cref="ITaskModel"/> on a list of examples with <see cref="AdamW"/> and an <see cref="LrSchedule"/>.
/// <paramref name="evaluator"/> runs evaluation on held-out data and returns its metrics (null = none);
/// <paramref name="saver"/> writes a checkpoint of the model and this trainer and returns its folder (null = none;
/// <see cref="Checkpoints.Save"/>). The trainer keeps the best metric and step; collaborators only observe and set flags.</summary>
public sealed class Trainer(ITaskModel model, IReadOnlyList<Example> train, Collator collator, BatchPlan plan,
    AdamW optimizer, LrSchedule schedule, TrainerOptions options,
    Func<IReadOnlyDictionary<string, double>>? evaluator = null, Func<Trainer, string>? saver = null)
{
    public ITaskModel Model { get; } = model;
    public AdamW Optimizer { get; } = optimizer;
    public LrSchedule Schedule { get; } = schedule;
    public BatchPlan Plan { get; } = plan;
    public TrainerOptions Options { get; } = options;
    public TrainerState State { get; private set; } = new();
    public TrainerControl Control { get; } = new();
    public List<ITrainerCallback> Callbacks { get; } = [];
    /// <summary>Runs evaluation on held-out data and returns its metrics (loss, accuracy, ...); null = none.</summary>
    public Func<IReadOnlyDictionary<string, double>>? Evaluator { get; } = evaluator;
    /// <summary>Writes a checkpoint and returns its folder, which <see cref="ITrainerCallback.OnSave"/> receives; null = none.</summary>
    public Func<Trainer, string>? Saver { get; } = saver;
    /// <summary>The data-parallel job this trainer is one rank of (each rank takes its shard of every global
    /// batch; gradients are averaged before clipping); null = a single process.</summary>
    public DataParallel? Parallel { get; set; }
    /// <summary>The last evaluation's metrics.</summary>
    public IReadOnlyDictionary<string, double>? LastEval { get; private set; }
    /// <summary>The folder of the last checkpoint written, or null.</summary>
    public string? LastCheckpoint { get; private set; }

    Tensor? _classWeights;

    /// <summary>Runs until the total step count or a stop flag. The whole loop is this method.</summary>
    public TrainerState Train()
    {
        Plan.Position = new LoaderPosition(State.Epoch, State.BatchInEpoch);
        Fire(c => c.OnTrainBegin(this));
        while (State.Step < Options.TotalSteps && !Control.ShouldStop)
        {
            // The per-step flags are reset once, here; collaborators set them in this step's callbacks.
            Control.ShouldEvaluate = false; Control.ShouldSave = false; Control.IsNewBest = false;
            var micro = Plan.NextStep(out int epoch, out bool epochEnded);
            StepLog log = TrainStep(micro, epoch);
            // Every tensor op makes a finalizable TorchSharp wrapper; a gen-0 collection per optimizer step (well under
            // a millisecond) keeps the managed heap at its floor instead of letting it climb to the default gen-0
            // budget over hundreds of steps. Native memory is kept flat by NativeMemory (jemalloc, or glibc's mmap setting).
            GC.Collect(0);
            (State.Epoch, State.BatchInEpoch) = (Plan.Position.Epoch, Plan.Position.Batch);
            Fire(c => c.OnStep(this, log));
            if (epochEnded) Fire(c => c.OnEpochEnd(this, epoch));
            bool interrupt = Options.Interrupt.IsCancellationRequested;
            if (Parallel != null) interrupt = Parallel.BroadcastFlag(interrupt);   // every rank stops at the same step
            if (interrupt)
            {
                // SIGINT/SIGTERM: the step is done; keep it in a checkpoint and stop (no evaluation).
                Control.Interrupted = true; Control.ShouldStop = true;
                Control.StopReason = $"interrupted at step {State.Step}";
                Save();
                break;
            }
            if (Control.ShouldEvaluate || (State.Step == Options.TotalSteps && Evaluator != null)) Evaluate();
            if (Parallel != null) Control.ShouldStop = Parallel.BroadcastFlag(Control.ShouldStop);   // rank 0 decides
            if (Control.ShouldSave || State.Step == Options.TotalSteps || Control.ShouldStop) Save();
        }
        Fire(c => c.OnTrainEnd(this));
        return State;
    }

    /// <summary>Forward/backward over the step's micro-batches, clip, update: all inside one dispose scope so
    /// memory stays flat. The logged loss is the mean of the micro-batch losses.</summary>
    StepLog TrainStep(List<int[]> micro, int epoch)
    {
        var sw = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        Model.Module.train();
        double lossSum = 0; long tokens = 0;
        for (int i = 0; i < micro.Count; i++)
        {
            // Data-parallel: this rank's shard of the global micro-batch, its loss weighted by its share of the
            // examples (n_r · W / n), so the average over ranks is the global batch's mean. An empty shard runs
            // one example with weight 0: every rank must reach the all-reduce with the same parameters active.
            var idx = micro[i];
            double w = 1;
            if (Parallel != null)
            {
                var mine = Parallel.Shard(idx);
                w = (double)mine.Length * Parallel.WorldSize / idx.Length;
                idx = mine.Length > 0 ? mine : [idx[0]];
            }
            long seed = (long)State.Step * 1009 + i + Options.Seed * 7L + (Parallel?.Rank ?? 0) * 1_000_003L;
            var batch = collator.Collate(idx.Select(j => train[j]).ToList(), maskSeed: seed);
            var loss = ComputeLoss(Model.Forward(batch), batch);
            (w == 1 ? loss / micro.Count : loss * (w / micro.Count)).backward();
            lossSum += w * loss.item<float>();
            tokens += w == 0 ? 0 : batch.InputIds.numel();
        }
        Optimizer.GatherGradients();   // every gradient now in the optimizer's flat buffers
        if (Parallel != null)
        {
            Parallel.AverageGradients(Optimizer);                       // one all-reduce per flat buffer
            var sums = Parallel.Sum([lossSum, tokens]);
            lossSum = sums[0] / Parallel.WorldSize; tokens = (long)sums[1];
        }
        double lossMean = lossSum / micro.Count;
        double gradNorm = Optimizer.GradNorm();
        double lr = Schedule.LrAt(State.Step);
        bool bad = !double.IsFinite(lossMean) || !double.IsFinite(gradNorm);
        if (bad)
        {
            State.SkippedSteps++;
            if (++State.BadStepsInARow >= Options.MaxBadSteps)
                throw new InvalidOperationException($"training diverged: loss or gradients were NaN/inf for {State.BadStepsInARow} optimizer steps in a row (step {State.Step + 1}); lower training.lr or check the data");
        }
        else
        {
            State.BadStepsInARow = 0;
            if (Options.MaxGradNorm > 0) ClipGradients(gradNorm);
            Optimizer.Step(lr);
        }
        Optimizer.ZeroGrad();
        State.Step++;
        State.TokensSeen += tokens;
        double epochF = epoch + (double)Plan.Position.Batch / Plan.BatchesPerEpoch + (Plan.Position.Batch == 0 && Plan.Position.Epoch > epoch ? 1 : 0);
        return new StepLog(State.Step, epochF, lossMean, lr, gradNorm, tokens / Math.Max(1e-9, sw.Elapsed.TotalSeconds), bad);
    }

    /// <summary>The model's own loss (HF's), or cross-entropy with label smoothing / class weights when asked.</summary>
    Tensor ComputeLoss(ModelOutput output, ModelBatch batch)
    {
        bool custom = (Options.LabelSmoothing > 0 || Options.ClassWeights != null) && output.Logits is not null && batch.Labels is not null;
        if (!custom) return output.Loss ?? throw new InvalidOperationException("the model returned no loss for a training batch (labels missing?)");
        var logits = HeadLosses.Fp32(output.Logits!); var labels = batch.Labels!;
        if (Model.Task is "causal-lm" or "generation")
        {
            // HF shifts inside the model: position t predicts token t+1. (B, T-1, V) vs (B, T-1).
            long t = logits.shape[1];
            logits = logits.narrow(1, 0, t - 1); labels = labels.narrow(1, 1, t - 1);
        }
        if (Options.ClassWeights != null) _classWeights ??= tensor(Options.ClassWeights, device: logits.device).DetachFromDisposeScope();
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), labels.reshape(-1),
            weight: _classWeights, ignore_index: -100, label_smoothing: Options.LabelSmoothing);
    }

    /// <summary>Scales gradients by max_norm / (norm + 1e-6) when that is below 1, as clip_grad_norm_.</summary>
    void ClipGradients(double totalNorm)
    {
        double coef = Options.MaxGradNorm / (totalNorm + 1e-6);
        if (coef < 1) Optimizer.ScaleGradients(coef);   // one multiply per flat gradient buffer
    }

    /// <summary>Runs the evaluator (in eval mode, no grad) and tells the collaborators.</summary>
    public IReadOnlyDictionary<string, double>? Evaluate()
    {
        if (Evaluator == null) return null;
        Model.Module.eval();
        using (no_grad()) LastEval = Evaluator();
        Model.Module.train();
        TrackBest(LastEval);
        Fire(c => c.OnEvaluate(this, LastEval));
        return LastEval;
    }

    // Best metric and step (kept in the state, so checkpoints and resumes carry them).
    void TrackBest(IReadOnlyDictionary<string, double> metrics)
    {
        if (Options.Best is not { } rule) return;
        if (!metrics.TryGetValue(rule.Metric, out double value))
            throw new InvalidOperationException($"training.early_stopping.metric: evaluation produced no metric '{rule.Metric}'; it produced: {string.Join(", ", metrics.Keys)}");
        Control.IsNewBest = rule.Improves(value, State.BestMetric);
        if (Control.IsNewBest) { State.BestMetric = value; State.BestStep = State.Step; State.EvalsWithoutImprovement = 0; }
        else State.EvalsWithoutImprovement++;
    }

    void Save()
    {
        if (Saver == null) return;
        LastCheckpoint = Saver(this);
        Fire(c => c.OnSave(this, LastCheckpoint));
    }

    /// <summary>Replaces the loop state (resume).</summary>
    public void Restore(TrainerState state) => State = state;

    void Fire(Action<ITrainerCallback> a)
    {
        foreach (var c in Callbacks) a(c);
    }
}
