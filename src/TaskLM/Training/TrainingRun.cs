// A whole run from a recipe: data, model, strategy, optimizer, collaborators, the loop, and the run folder.
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;
using TaskLM.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Training;

/// <summary>How a run is started from the command line (or a program).</summary>
public sealed class RunOptions
{
    /// <summary>Resume from this checkpoint folder, "latest" for the run folder's newest, or null for a fresh run.</summary>
    public string? Resume { get; init; }
    public Device Device { get; init; } = CPU;
    /// <summary>Loads a tokenizer by folder or name (text data); null = only pre-tokenized data works.</summary>
    public Func<string, ITokenizer>? TokenizerLoader { get; init; } = Data.Tokenization.TokenizerLoader.Load;
    /// <summary>Progress lines for people (the CLI prints them).</summary>
    public Action<string> Say { get; init; } = _ => { };
    /// <summary>Extra observers (the CLI's progress bar).</summary>
    public IReadOnlyList<ITrainerCallback> Callbacks { get; init; } = [];
}

/// <summary>Result of a run: final state, last evaluation, where the best model is.</summary>
public sealed record RunResult(TrainerState State, IReadOnlyDictionary<string, double>? LastEval, string RunDir, string? StopReason, long TrainableParameters, long TotalParameters);

/// <summary>Builds everything a recipe names and runs the <see cref="Trainer"/>. The run folder gets
/// recipe.resolved.yaml, metrics.jsonl, TensorBoard events, checkpoints/step-N/ and best/.</summary>
public static class TrainingRun
{
    public static RunResult Run(Recipe r, RunOptions o)
    {
        string runDir = r.OutputDir;
        Directory.CreateDirectory(runDir);
        string? resumeDir = o.Resume == null ? null : o.Resume == "latest" ? Checkpoints.Latest(runDir) : o.Resume;
        if (resumeDir != null && !File.Exists(Path.Combine(resumeDir, "trainer_state.json")))
            throw new FileNotFoundException($"{resumeDir}: not a checkpoint (no trainer_state.json)");
        File.WriteAllText(Path.Combine(runDir, "recipe.resolved.yaml"), RecipeLoader.ToYaml(r));
        manual_seed(r.Training.Seed);

        // Data. The tokenizer: the recipe's, else the model folder's (when it has tokenizer files).
        ITokenizer? tok = null;
        string? tokSource = r.Tokenizer ?? DefaultTokenizerSource(r.Model.Init);
        if (tokSource != null && o.TokenizerLoader != null) tok = o.TokenizerLoader(tokSource);
        var train = TaskData.Load(r, r.Data.Train!, tok, null, r.Data.MaxTrainExamples);
        var labels = train.Labels;
        var val = r.Data.Validation != null ? TaskData.Load(r, r.Data.Validation, tok, labels, r.Data.MaxEvalExamples) : null;
        o.Say($"data: {train.Examples.Count} training examples" + (val != null ? $", {val.Examples.Count} validation" : "") + (labels != null ? $", {labels.Count} labels" : ""));

        // Model: the checkpoint's weights when resuming a full run; otherwise the recipe's init.
        string modelTask = r.Task == "generation" ? "causal-lm" : r.Task;
        bool lora = r.Strategy.Method == "lora";
        ITaskModel model;
        string init = resumeDir != null && !lora ? resumeDir : r.Model.Init;
        if (Directory.Exists(init))
        {
            model = ModelFactory.FromPretrained(init, modelTask, labels?.Count, labels);
            // HF's load report: a new head is normal when fine-tuning, and said so; so are unused weights.
            if (model is PreTrainedModel { LoadReport: { } report }) foreach (var line in report.ToString().Split(Environment.NewLine)) o.Say(line);
        }
        else
        {
            var ov = new Dictionary<string, object>();
            foreach (var (k, v) in r.Model.Config ?? []) if (v != null) ov[k] = v.DeepClone();
            if (labels != null) ov["labels"] = labels.ToList();
            model = ModelFactory.FromPreset(init, modelTask, ov);
        }
        model.Module.to(o.Device);
        ITrainerCallback? unfreezer = null;
        if (lora)
        {
            var l = r.Strategy.Lora;
            var heads = r.Task is "classification" or "token-classification" or "question-answering"
                ? model.Module.named_children().Select(c => c.name).Where(n => Strategies.IsHead(model, n + ".")).ToList() : [];
            string? adapter = resumeDir ?? l.Adapter;
            model = adapter != null ? LoraModel.FromAdapter(model, adapter)
                : new LoraModel(model, new LoraConfig(l.R, l.Alpha, l.Dropout, l.TargetModules ?? LoraConfig.DefaultTargets(model.ModelType)), heads);
        }
        else if (r.Strategy.Method == "freeze") o.Say(Strategies.ApplyFreeze(model, r.Strategy.Freeze));
        if (r.Strategy.UnfreezeEvery > 0 && !lora) unfreezer = new Strategies.GradualUnfreezing(model, r.Strategy.UnfreezeEvery);

        long trainable = model.Module.parameters().Where(p => p.requires_grad).Sum(p => p.numel());
        long total = model is LoraModel lm ? lm.CountParameters().total : model.Module.parameters().Sum(p => p.numel());
        o.Say($"trainable params: {trainable:N0} || all params: {total:N0} || trainable%: {100.0 * trainable / Math.Max(1, total):F4}");

        // Optimizer, schedule, loop.
        var t = r.Training;
        var (decay, noDecay) = AdamW.HfGroups(model.Module, t.WeightDecay, unfreezer != null ? (_, _) => true : null);
        var opt = new AdamW([decay, noDecay], t.Betas[0], t.Betas[1], t.Eps);
        var plan = new BatchPlan(train.Examples.Count, t.BatchSize, t.GradAccum, r.Data.Shuffle, t.Seed);
        int totalSteps = t.MaxSteps > 0 ? t.MaxSteps : t.Epochs * plan.StepsPerEpoch;
        var schedule = new LrSchedule(t.Scheduler, t.Lr, LrSchedule.WarmupStepsFor(t.Warmup, totalSteps), totalSteps);
        var collator = MakeCollator(r, model, tok, o.Device);
        var trainer = new Trainer(model, train.Examples, collator, plan, opt, schedule, new TrainerOptions
        {
            TotalSteps = totalSteps, MaxGradNorm = t.MaxGradNorm, LabelSmoothing = t.LabelSmoothing,
            ClassWeights = ClassWeights(t.ClassWeights, train.Examples, labels), MaxBadSteps = t.MaxBadSteps, Seed = t.Seed,
        });
        if (val != null) trainer.Evaluator = () => EvalLoop.Run(model, val.Examples, collator, t.EvalBatchSize, labels);

        var ck = new Checkpoints(runDir, t.KeepLast, model.SavePretrained);
        trainer.Saver = tr => ck.Save(tr);
        if (resumeDir != null)
        {
            Checkpoints.Restore(trainer, resumeDir);   // also torch's RNG, after every init draw above
            o.Say($"resumed from {resumeDir} at step {trainer.State.Step}");
        }
        using var metrics = new MetricsLogger(runDir, t.LogEvery, t.Tensorboard, resumeDir != null ? trainer.State.Step : -1);
        trainer.Callbacks.Add(new ScheduleFlags(t.EvalEvery, t.SaveEvery));
        trainer.Callbacks.Add(metrics);
        if (unfreezer != null) trainer.Callbacks.Add(unfreezer);
        if (val != null)
        {
            var es = t.EarlyStopping;
            string best = Path.Combine(runDir, "best");
            trainer.Callbacks.Add(new EarlyStopping(es?.Metric ?? "loss", es?.Mode ?? "auto", es?.Patience, es?.MinDelta ?? 0,
                _ => SaveAtomically(best, model.SavePretrained)));
        }
        trainer.Callbacks.AddRange(o.Callbacks);
        o.Say($"training: {totalSteps} optimizer steps ({plan.StepsPerEpoch}/epoch, batch {t.BatchSize} × accum {t.GradAccum}), {t.Scheduler} lr {t.Lr:G3}, warmup {schedule.WarmupSteps}");
        var state = trainer.Train();
        if (r.Data.Test != null) EvaluateTest(r, runDir, model, tok, labels, collator, modelTask, o);
        return new RunResult(state, trainer.LastEval, runDir, trainer.Control.StopReason, trainable, total);
    }

    /// <summary>The tokenizer a model init speaks when the recipe names none: the folder's own tokenizer files,
    /// else GPT-2's vocabulary for a GPT-2 preset, else none (pre-tokenized data only).</summary>
    internal static string? DefaultTokenizerSource(string init) => ModelFactory.DefaultTokenizerSource(init);

    internal static bool HasTokenizerFiles(string folder) => ModelFactory.HasTokenizerFiles(folder);

    /// <summary>Scores the test split with best/ (or the final model when there is none) and writes eval.json
    /// ({"task", "split": "test", "n", "metrics"}).</summary>
    static void EvaluateTest(Recipe r, string runDir, ITaskModel model, ITokenizer? tok, IReadOnlyList<string>? labels, Collator collator, string modelTask, RunOptions o)
    {
        var test = TaskData.Load(r, r.Data.Test!, tok, labels, r.Data.MaxEvalExamples);
        string best = Path.Combine(runDir, "best");
        var scored = model is not LoraModel && File.Exists(Path.Combine(best, "config.json"))
            ? ModelFactory.FromPretrained(best, modelTask, labels?.Count, labels) : model;
        scored.Module.to(o.Device);
        scored.Module.eval();
        Dictionary<string, double> metrics;
        using (no_grad()) metrics = EvalLoop.Run(scored, test.Examples, collator, r.Training.EvalBatchSize, labels);
        var json = new JsonObject { ["task"] = r.Task, ["split"] = "test", ["n"] = test.Examples.Count, ["model"] = ReferenceEquals(scored, model) ? "final" : "best" };
        var mj = new JsonObject();
        foreach (var (k, v) in metrics) mj[k] = v;
        json["metrics"] = mj;
        File.WriteAllText(Path.Combine(runDir, "eval.json"), json.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        o.Say("test: " + string.Join("  ", metrics.Select(kv => $"{kv.Key}={kv.Value:G5}")));
    }

    static void SaveAtomically(string dir, Action<string> save)
    {
        string tmp = dir + ".tmp";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        save(tmp);
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        Directory.Move(tmp, dir);
    }

    internal static Collator MakeCollator(Recipe r, ITaskModel model, ITokenizer? tok, Device device)
    {
        // Padding id: the model's, else the tokenizer's pad or EOS; never past the embedding (a preset with a small vocab).
        int vocab = (int?)model.Config["vocab_size"] ?? int.MaxValue;
        int pad = (int?)model.Config["pad_token_id"] ?? tok?.PadTokenId ?? tok?.EosTokenId ?? 0;
        if (pad < 0 || pad >= vocab) pad = 0;
        if (r.Task != "masked-lm") return new Collator(r.Task, pad, device);
        if (tok == null) throw new InvalidOperationException("masked-lm needs a tokenizer (for [MASK] and the special tokens)");
        var specials = new HashSet<int>();
        foreach (var s in new[] { "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]" }) if (tok.TokenToId(s) is int id) specials.Add(id);
        return new Collator(r.Task, pad, device)
        {
            MlmProbability = r.Data.MlmProbability, MaskTokenId = tok.TokenToId("[MASK]") ?? throw new InvalidOperationException("tokenizer has no [MASK] token"),
            VocabSize = tok.VocabSize, SpecialIds = specials,
        };
    }

    /// <summary>"balanced" = n / (k · count_c) as sklearn's compute_class_weight; or the recipe's list.</summary>
    static float[]? ClassWeights(JsonNode? spec, List<Example> train, IReadOnlyList<string>? labels)
    {
        if (spec == null) return null;
        int k = labels?.Count ?? throw new InvalidOperationException("training.class_weights needs a classification task with labels");
        if (spec is JsonArray a)
        {
            if (a.Count != k) throw new InvalidOperationException($"training.class_weights has {a.Count} entries, the task has {k} labels ({string.Join(", ", labels)})");
            return a.Select(x => (float)(double)x!).ToArray();
        }
        var counts = new long[k];
        foreach (var e in train)
        {
            if (e.Label >= 0) counts[e.Label]++;
            if (e.TokenLabels != null) foreach (int l in e.TokenLabels) if (l >= 0) counts[l]++;
        }
        long n = counts.Sum();
        return counts.Select(c => c == 0 ? 0f : (float)(n / (double)(k * c))).ToArray();
    }
}
