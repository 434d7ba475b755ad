// `tasklm tune`'s engine: claims trials from the study, runs each as a training run with a pruning collaborator,
// records the outcome, keeps the best trial's model and recipe, and writes the leaderboard and plots.
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaskLM.Evaluation;
using TaskLM.Recipes;
using static TorchSharp.torch;

namespace TaskLM.Training.Search;

/// <summary>What a study runs and how.</summary>
public sealed class TuneOptions
{
    public required string RecipePath { get; init; }
    /// <summary>key=value overrides applied to every trial (before the searched values).</summary>
    public IReadOnlyList<string> Overrides { get; init; } = [];
    /// <summary>The study's trial budget: trials not interrupted, counted over every run of the study.</summary>
    public int Trials { get; init; } = 20;
    public string Sampler { get; init; } = "tpe";
    public string Pruner { get; init; } = "asha";
    /// <summary>Evaluation metric to optimise; null = the recipe's early_stopping metric, else loss.</summary>
    public string? Metric { get; init; }
    public int Seed { get; init; } = 42;
    /// <summary>null = <c>{output_dir}-tune</c>.</summary>
    public string? StudyDir { get; init; }
    /// <summary>The device asked for; null = each trial's recipe decides (<see cref="RunOptions.Device"/>).</summary>
    public Device? Device { get; init; } = CPU;
    /// <summary>Progress lines for people (one per trial as it ends).</summary>
    public Action<string> Say { get; init; } = _ => { };
}

/// <summary>The resolved setting of a study: space, metric and direction, folder.</summary>
public sealed record StudySetup(SearchSpace Space, string Metric, bool Maximize, string StudyDir, Recipe BaseRecipe)
{
    /// <summary>True when the recipe has no <c>search:</c> section and the study searches <see cref="SearchSpace.Default"/>.</summary>
    public bool DefaultSpace { get; init; }
    /// <summary>data.train/data.validation overrides every trial gets when the validation set was held out of the training
    /// file for the study (the recipe names no data.validation); empty otherwise.</summary>
    public IReadOnlyList<string> DataOverrides { get; init; } = [];

    public Dictionary<string, string> Meta(TuneOptions o) => new()
    {
        ["recipe"] = o.RecipePath, ["metric"] = Metric, ["direction"] = Maximize ? "maximize" : "minimize",
        ["space"] = Space.Signature(), ["overrides"] = string.Join(' ', o.Overrides), ["seed"] = o.Seed.ToString(),
    };
}

/// <summary>Runs studies. A worker loops claim → train → finish until the budget is spent; several workers
/// (threads of no one: separate processes) share one study through its database.</summary>
public static class Tuner
{
    /// <summary>Reads the recipe and its search space and decides metric, direction and study folder.</summary>
    public static StudySetup Prepare(TuneOptions o)
    {
        if (o.Trials < 1) throw new ArgumentException("--trials must be at least 1");
        if (!Samplers.Names.Contains(o.Sampler)) throw new ArgumentException($"--sampler '{o.Sampler}': use {string.Join(", ", Samplers.Names)}");
        if (!Pruners.Names.Contains(o.Pruner)) throw new ArgumentException($"--pruner '{o.Pruner}': use {string.Join(", ", Pruners.Names)}");
        var recipe = RecipeLoader.Load(o.RecipePath, o.Overrides);
        bool defaultSpace = !SearchSpace.HasSection(o.RecipePath, o.Overrides);
        var space = defaultSpace ? SearchSpace.Default(o.RecipePath, o.Overrides) : SearchSpace.Load(o.RecipePath, o.Overrides);
        // The grid is checked here, before study.db exists (a study that failed after creating it stayed pinned to its metric).
        if (o.Sampler == "grid")
            foreach (var p in space.Params)
                if (p.GridValues() == null) throw new ArgumentException($"--sampler grid: {p.Key} is a continuous range; give it a step or a choice list, or use random/tpe");
        var es = recipe.Training.EarlyStopping;
        string metric = o.Metric ?? es?.Metric ?? "loss";
        string mode = es != null && es.Metric == metric ? es.Mode : "auto";
        bool maximize = BestMetricRule.ResolveMode(metric, mode) == "max";
        string dir = o.StudyDir ?? recipe.OutputDir.TrimEnd('/', '\\') + "-tune";
        // Trials are scored on validation data. Without a file, the validation set is held out of the training file as
        // `train` holds it out (AutoSettings), once for the whole study, so every trial trains and is scored on the same rows.
        List<string> dataOverrides = [];
        if (recipe.Data.Validation == null)
        {
            if (recipe.Data.ValidationSplit <= 0)
            {
                recipe.Data.ValidationSplit = 0.1;
                o.Say("data.validation: none given and data.validation_split is 0, so tune holds out 10% of the training file (trials are scored on it; set data.validation to use a file)");
            }
            AutoSettings.HoldOutValidation(recipe, dir, o.Say);
            dataOverrides = [$"data.train={Path.GetFullPath(recipe.Data.Train!)}", $"data.validation={Path.GetFullPath(recipe.Data.Validation!)}"];
        }
        return new StudySetup(space, metric, maximize, dir, recipe) { DefaultSpace = defaultSpace, DataOverrides = dataOverrides };
    }

    /// <summary>One worker: runs trials until the study's budget is spent (or its grid is exhausted).
    /// Returns how many trials this worker ran.</summary>
    public static int Work(TuneOptions o, StudySetup s)
    {
        using var study = Study.Open(s.StudyDir, s.Meta(o));
        var sampler = Samplers.Create(o.Sampler, s.Maximize, o.Seed);
        var pruner = Pruners.Create(o.Pruner);
        int ran = 0;
        while (study.Claim(s.Space, sampler, o.Trials, RunDirOf(s)) is { } claim)
        {
            RunTrial(o, s, study, pruner, claim.number, claim.values);
            ran++;
        }
        return ran;
    }

    static Func<int, string> RunDirOf(StudySetup s) => n => Path.Combine(s.StudyDir, "trials", $"trial-{n:D4}");

    static void RunTrial(TuneOptions o, StudySetup s, Study study, IPruner pruner, int number, Dictionary<string, double> values)
    {
        string runDir = RunDirOf(s)(number);
        var sw = Stopwatch.StartNew();
        TrialState state; double? value = null; int steps = 0, bestStep = 0; string? error = null;
        var pruning = new PruningCallback(study, number, s.Metric, pruner, s.Maximize);
        try
        {
            var recipe = TrialRecipe(o, s, values, runDir);
            if (Directory.Exists(runDir)) Directory.Delete(runDir, recursive: true);   // a claimed number is new: nothing of ours is there
            Directory.CreateDirectory(runDir);
            using var log = new StreamWriter(Path.Combine(runDir, "trial.log")) { AutoFlush = true };
            log.WriteLine($"trial {number}: {string.Join(' ', s.Space.Params.Select(p => p.Override(values[p.Key])))}");
            var result = TrainingRun.Run(recipe, new RunOptions { Device = o.Device, Callbacks = [pruning], Say = log.WriteLine });
            steps = result.State.Step; bestStep = result.State.BestStep;
            value = result.State.BestMetric;
            if (value is not { } v || !double.IsFinite(v)) { state = TrialState.Failed; error = $"no finite {s.Metric} evaluation"; value = null; }
            else state = pruning.Pruned ? TrialState.Pruned : TrialState.Complete;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            state = TrialState.Failed;
            error = e.Message.Split('\n')[0];
            steps = pruning.LastStep;
        }
        study.Finish(number, state, value, steps, bestStep, sw.Elapsed.TotalSeconds, error);
        // Checkpoints are for resuming one run; a finished trial never resumes, so its disk goes back.
        TryDelete(Path.Combine(runDir, "checkpoints"));
        GC.Collect();
        var best = KeepBest(s, study);
        string bestText = best is { } b ? $"best {b.Record.Value:G5} (trial {b.Record.Number})" : "no complete trial yet";
        o.Say($"trial {number,3}  {state.ToString().ToLowerInvariant(),-8}  {s.Metric} {(value is { } x ? x.ToString("G5") : "-"),-8}  {bestText}  " +
              string.Join(" ", s.Space.Params.Select(p => $"{p.Key}={Short(p, values[p.Key])}")) +
              $"  {steps} steps  {sw.Elapsed.TotalSeconds:F1} s" + (error != null ? $"  error: {error}" : ""));
    }

    static string Short(SearchParam p, double v) => p.Kind is ParamKind.Uniform or ParamKind.LogUniform && p.Step == null ? v.ToString("G4") : p.ValueText(v);

    /// <summary>The recipe of one trial: the base overrides, then the searched values, into the trial's run folder,
    /// with the early-stopping metric set to the study's (so best/ and the objective use the same metric).</summary>
    public static Recipe TrialRecipe(TuneOptions o, StudySetup s, IReadOnlyDictionary<string, double> values, string runDir)
    {
        var recipe = RecipeLoader.Load(o.RecipePath, [.. o.Overrides, .. s.DataOverrides, .. s.Space.Params.Select(p => p.Override(values[p.Key]))]);
        recipe.OutputDir = runDir;
        recipe.Search = null;
        var es = recipe.Training.EarlyStopping;
        if (es == null) recipe.Training.EarlyStopping = new EarlyStoppingSection { Metric = s.Metric, Mode = s.Maximize ? "max" : "min", Patience = int.MaxValue };
        else if (es.Metric != s.Metric) { es.Metric = s.Metric; es.Mode = s.Maximize ? "max" : "min"; }
        return recipe;
    }

    /// <summary>Finds the best complete trial; writes its recipe (ready to train) to best-recipe.yaml and removes the
    /// best/ model of every other finished trial, so only the winner's stays.</summary>
    static StoredTrial? KeepBest(StudySetup s, Study study)
    {
        var trials = study.Trials();
        var best = Best(trials, s.Maximize);
        if (best == null) return null;
        foreach (var t in trials)
            if (t.Record.Number != best.Record.Number && t.Record.State != TrialState.Running && t.RunDir != null)
                TryDelete(Path.Combine(t.RunDir, "best"));
        string resolved = Path.Combine(best.RunDir!, "recipe.resolved.yaml");
        if (File.Exists(resolved))
        {
            var r = RecipeLoader.Load(resolved);
            r.OutputDir = s.BaseRecipe.OutputDir.TrimEnd('/', '\\') + "-best";
            string header = $"# Best trial ({best.Record.Number}) of the study in {s.StudyDir}: {s.Metric} {best.Record.Value:G6}.\n" +
                            $"# Train it: tasklm train {Path.Combine(s.StudyDir, "best-recipe.yaml")}   (its model is {Path.Combine(best.RunDir!, "best")})\n";
            string tmp = Path.Combine(s.StudyDir, $"best-recipe.yaml.{Environment.ProcessId}.tmp");
            File.WriteAllText(tmp, header + RecipeLoader.ToYaml(r));
            File.Move(tmp, Path.Combine(s.StudyDir, "best-recipe.yaml"), overwrite: true);
        }
        return best;
    }

    /// <summary>The best complete trial (the objective is each trial's best evaluation).</summary>
    public static StoredTrial? Best(IEnumerable<StoredTrial> trials, bool maximize)
    {
        var done = trials.Where(t => t.Record.State == TrialState.Complete && t.Record.Value != null).ToList();
        if (done.Count == 0) return null;
        return maximize ? done.MaxBy(t => t.Record.Value!.Value) : done.MinBy(t => t.Record.Value!.Value);
    }

    static void TryDelete(string dir)
    {
        try { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>Writes leaderboard.json and plots/ (metric by trial with the running best; one scatter per parameter)
    /// into the study folder and returns the leaderboard as JSON.</summary>
    public static JsonObject Report(TuneOptions o, StudySetup s)
    {
        using var study = Study.Open(s.StudyDir, s.Meta(o));
        var trials = study.Trials();
        var best = Best(trials, s.Maximize);
        var order = trials.OrderBy(t => t.Record.Value == null ? 1 : 0)
            .ThenBy(t => t.Record.Value is { } v ? (s.Maximize ? -v : v) : 0).ThenBy(t => t.Record.Number).ToList();
        var rows = new JsonArray();
        foreach (var t in order)
        {
            var ps = new JsonObject();
            foreach (var p in s.Space.Params) if (t.Record.Params.TryGetValue(p.Key, out double v)) ps[p.Key] = p.ToJson(v);
            rows.Add(new JsonObject
            {
                ["trial"] = t.Record.Number, ["state"] = t.Record.State.ToString().ToLowerInvariant(), ["value"] = t.Record.Value,
                ["params"] = ps, ["evaluations"] = t.Record.Intermediate.Count, ["steps"] = t.Steps, ["best_step"] = t.BestStep,
                ["wall_s"] = t.WallSeconds, ["run_dir"] = t.RunDir, ["error"] = t.Error, ["interrupted"] = t.Record.Interrupted ? true : null,
            });
        }
        var started = trials.Select(t => t.Started).Where(x => x != null).Select(x => DateTime.Parse(x!, null, System.Globalization.DateTimeStyles.RoundtripKind)).ToList();
        var ended = trials.Select(t => t.Ended).Where(x => x != null).Select(x => DateTime.Parse(x!, null, System.Globalization.DateTimeStyles.RoundtripKind)).ToList();
        var counts = new JsonObject();
        foreach (var st in Enum.GetValues<TrialState>()) counts[st.ToString().ToLowerInvariant()] = trials.Count(t => t.Record.State == st);
        var json = new JsonObject
        {
            ["study_dir"] = s.StudyDir, ["recipe"] = o.RecipePath, ["metric"] = s.Metric, ["direction"] = s.Maximize ? "maximize" : "minimize",
            ["sampler"] = o.Sampler, ["pruner"] = o.Pruner, ["counts"] = counts,
            ["span_s"] = started.Count > 0 && ended.Count > 0 ? Math.Round((ended.Max() - started.Min()).TotalSeconds, 1) : null,
            ["trial_wall_s"] = Math.Round(trials.Sum(t => t.WallSeconds ?? 0), 1),
            ["best"] = best == null ? null : new JsonObject
            {
                ["trial"] = best.Record.Number, ["value"] = best.Record.Value, ["model"] = Path.Combine(best.RunDir!, "best"),
                ["recipe"] = Path.Combine(s.StudyDir, "best-recipe.yaml"),
            },
            ["trials"] = rows,
        };
        File.WriteAllText(Path.Combine(s.StudyDir, "leaderboard.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        WritePlots(s, trials);
        return json;
    }

    static void WritePlots(StudySetup s, List<StoredTrial> trials)
    {
        string dir = Path.Combine(s.StudyDir, "plots");
        Directory.CreateDirectory(dir);
        var scored = trials.Where(t => t.Record.Value != null).ToList();
        PlotSeries Points(string name, IEnumerable<StoredTrial> ts, Func<StoredTrial, double> x) =>
            new(name, ts.Select(x).ToList(), ts.Select(t => t.Record.Value!.Value).ToList());
        var complete = scored.Where(t => t.Record.State == TrialState.Complete).ToList();
        var pruned = scored.Where(t => t.Record.State == TrialState.Pruned).ToList();
        // The running best over complete trials, in trial order.
        var bx = new List<double>(); var by = new List<double>(); double? run = null;
        foreach (var t in complete.OrderBy(t => t.Record.Number))
        {
            double v = t.Record.Value!.Value;
            if (run is { } prev) { bx.Add(t.Record.Number); by.Add(prev); }   // a step: flat until the trial that improves
            run = run is not { } r ? v : s.Maximize ? Math.Max(r, v) : Math.Min(r, v);
            bx.Add(t.Record.Number); by.Add(run.Value);
        }
        File.WriteAllBytes(Path.Combine(dir, "trials.png"), Plots.ScatterChart($"{s.Metric} by trial", "trial", s.Metric,
            [Points("complete", complete, t => t.Record.Number), Points("pruned", pruned, t => t.Record.Number)], [new PlotSeries("running best", bx, by)], integerX: true));
        foreach (var p in s.Space.Params)
        {
            string label = p.Kind == ParamKind.Choice ? $"{p.Key} (choice index: {string.Join(", ", p.Choices.Select((c, i) => $"{i}={c}"))})" : p.Key;
            File.WriteAllBytes(Path.Combine(dir, $"param-{p.Key}.png"), Plots.ScatterChart($"{s.Metric} by {p.Key}", label, s.Metric,
                [Points("complete", complete, t => t.Record.Params[p.Key]), Points("pruned", pruned, t => t.Record.Params[p.Key])], logX: p.Log));
        }
    }

    /// <summary>The training collaborator that reads the study's metric at each evaluation, records it, asks the
    /// pruner, and sets the stop flag (the last evaluation of a run is recorded but never pruned: nothing is left to save).</summary>
    sealed class PruningCallback(Study study, int number, string metric, IPruner pruner, bool maximize) : ITrainerCallback
    {
        int _evals;
        public bool Pruned { get; private set; }
        public int LastStep { get; private set; }

        public void OnStep(Trainer t, StepLog log) => LastStep = log.Step;

        public void OnEvaluate(Trainer t, IReadOnlyDictionary<string, double> metrics)
        {
            if (!metrics.TryGetValue(metric, out double v))
                throw new InvalidOperationException($"--metric {metric}: evaluation produced no metric '{metric}'; it produced: {string.Join(", ", metrics.Keys)}");
            _evals++;
            study.Report(number, _evals, t.State.Step, v);
            if (t.State.Step >= t.Options.TotalSteps || t.Control.ShouldStop) return;
            var all = study.Trials().Select(x => x.Record).ToList();
            var me = all.First(x => x.Number == number);
            if (pruner.ShouldPrune(me, all, maximize))
            {
                Pruned = true;
                t.Control.ShouldStop = true;
                t.Control.StopReason = $"pruned by {pruner.Name} at evaluation {_evals} (step {t.State.Step}): {metric} {v:G5}";
            }
        }
    }
}
