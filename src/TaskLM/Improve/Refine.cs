// `tasklm refine`: continual refinement. Continue fine-tuning a run's champion on new data mixed with a replay sample of
// its training data (against forgetting) as a child run, score champion and challenger on the old test split and on the
// new data's test split, and promote the challenger only if it is no worse on the old split (within a tolerance) and
// better on the new one. Lineage and decisions live in the parent run folder (lineage.json, champion.json, report.md).
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using TaskLM.Evaluation;
using TaskLM.Hf;
using TaskLM.Models;
using TaskLM.Recipes;
using TaskLM.Training;
using static TorchSharp.torch;

namespace TaskLM.Improve;

public sealed class RefineOptions
{
    /// <summary>The parent run folder (it holds recipe.resolved.yaml and best/).</summary>
    public required string Run { get; init; }
    /// <summary>The new labelled data (JSONL, CSV, ...), same columns as the run's.</summary>
    public required string Data { get; init; }
    /// <summary>Share of the training mix drawn from the champion's training data (0 = new data only).</summary>
    public double Replay { get; init; } = 0.3;
    /// <summary>Held out of the new data as its test split (stratified), unless <see cref="NewTest"/> is given.</summary>
    public double TestFraction { get; init; } = 0.2;
    public string? NewTest { get; init; }
    /// <summary>The challenger may be at most this much worse than the champion on the old test split.</summary>
    public double Tolerance { get; init; } = 0.01;
    /// <summary>The challenger must beat the champion on the new test split by more than this.</summary>
    public double MinGain { get; init; } = 0.0;
    public string? Metric { get; init; }
    /// <summary>key=value overrides of the child's recipe (training.epochs=1, training.lr=2e-5, ...).</summary>
    public IReadOnlyList<string> Overrides { get; init; } = [];
    public int Seed { get; init; } = 42;
    public int BootstrapSamples { get; init; } = 1000;
    public Device Device { get; init; } = CPU;
    public Action<string> Say { get; init; } = _ => { };
}

public static class Refine
{
    const string ReportBegin = "<!-- tasklm refine: lineage (rewritten by each refine) -->";
    const string ReportEnd = "<!-- /tasklm refine -->";

    /// <summary>The run's current champion: champion.json's model (a promoted refinement), else the run's best/.
    /// Returns the model folder and the run folder whose recipe trained it.</summary>
    public static (string Model, string TrainedBy) Champion(string run)
    {
        string pointer = Path.Combine(run, "champion.json");
        if (File.Exists(pointer) && JsonNode.Parse(File.ReadAllText(pointer)) is JsonObject c && c["run"] is { } rel)
        {
            string childRun = Path.GetFullPath(Path.Combine(run, rel.GetValue<string>()));
            return (ModelOf(childRun), childRun);
        }
        return (ModelOf(run), run);
    }

    static string ModelOf(string run) => ModelSource.Resolve(run).Folder!;

    public static JsonObject Run(RefineOptions o)
    {
        if (o.Replay is < 0 or >= 1) throw new ArgumentException($"--replay {o.Replay}: a share of the mix in [0, 1)");
        if (o.TestFraction is <= 0 or >= 1 && o.NewTest == null) throw new ArgumentException($"--test-fraction {o.TestFraction}: must be in (0, 1)");
        string run = Path.GetFullPath(o.Run);
        if (!File.Exists(Path.Combine(run, "recipe.resolved.yaml"))) throw new FileNotFoundException($"{o.Run}: not a run folder (no recipe.resolved.yaml)");
        var root = RecipeLoader.Load(Path.Combine(run, "recipe.resolved.yaml"));
        if (root.Task != "classification") throw new RecipeException($"{o.Run}: refine handles classification runs (this one is '{root.Task}')");
        if (root.Strategy.Method == "lora") throw new RecipeException($"{o.Run}: refine continues full or freeze runs; a LoRA run's best/ is an adapter (merge it first)");
        if (root.Data.Test == null) throw new RecipeException($"{o.Run}: the run has no data.test: the champion cannot be checked on the old data");
        var (champModel, champRun) = Champion(run);
        var champRecipe = RecipeLoader.Load(Path.Combine(champRun, "recipe.resolved.yaml"));
        string metric = Scoring.TaskMetric(root, o.Metric);
        var d = root.Data;
        // The child's recipe: the champion's, with the overrides checked before anything is written.
        var recipe = RecipeLoader.Load(Path.Combine(champRun, "recipe.resolved.yaml"), o.Overrides);

        // The child folder and its data: the new rows split into train / validation / test, and the training mix.
        // The user's new rows are checked against the columns the child will read before anything is written: a missing
        // column used to be reported against refine's own train-mix.jsonl, and each failure left a numbered folder.
        var newRows = LabelledRows.Read(o.Data);
        foreach (var (col, key) in new[] { (recipe.Data.TextColumn, "data.text_column"), (recipe.Data.TextPairColumn, "data.text_pair_column"), (d.LabelColumn, "data.label_column") })
            if (col != null && newRows.FindIndex(r => !r.ContainsKey(col)) is int bad && bad >= 0)
                throw new InvalidDataException($"{o.Data}: row {bad + 1} has no column '{col}' ({key}; its columns: {string.Join(", ", newRows[bad].Select(kv => kv.Key))})");
        string refinements = Path.Combine(run, "refinements");
        Directory.CreateDirectory(refinements);
        int n = Directory.EnumerateDirectories(refinements).Select(x => int.TryParse(Path.GetFileName(x), out int k) ? k : 0).DefaultIfEmpty(0).Max() + 1;
        string child = Path.Combine(refinements, n.ToString(CultureInfo.InvariantCulture));
        Directory.CreateDirectory(child);
        List<JsonObject> newTrain, newTest;
        if (o.NewTest != null) { newTrain = newRows; newTest = LabelledRows.Read(o.NewTest); }
        else (newTrain, newTest) = LabelledRows.StratifiedSplit(newRows, d.LabelColumn, o.TestFraction, o.Seed, o.Data);
        var (newFit, newVal) = LabelledRows.StratifiedSplit(newTrain, d.LabelColumn, 0.1, o.Seed + 10, o.Data);
        var pool = LabelledRows.Read(champRecipe.Data.Train!);
        int replayN = o.Replay == 0 ? 0 : Math.Min(pool.Count, (int)Math.Round(o.Replay / (1 - o.Replay) * newFit.Count));
        var replay = replayN == 0 ? [] : LabelledRows.StratifiedSample(pool, d.LabelColumn, replayN / (double)pool.Count, o.Seed, champRecipe.Data.Train!);
        var mix = LabelledRows.Mix(newFit.Concat(replay), o.Seed);
        var valRows = newVal.ToList();
        if (d.Validation != null)
        {
            var oldVal = LabelledRows.Read(d.Validation);
            valRows.AddRange(LabelledRows.StratifiedSample(oldVal, d.LabelColumn, Math.Min(1.0, Math.Max(newVal.Count, 1) / (double)oldVal.Count), o.Seed, d.Validation));
        }
        string dataDir = Path.Combine(child, "data");
        string mixPath = LabelledRows.Write(Path.Combine(dataDir, "train-mix.jsonl"), mix);
        string valPath = LabelledRows.Write(Path.Combine(dataDir, "validation.jsonl"), valRows);
        string newTestPath = LabelledRows.Write(Path.Combine(dataDir, "new-test.jsonl"), newTest);
        o.Say($"refinement {n} of {o.Run}: champion {Path.GetRelativePath(run, champModel)}; training mix {mix.Count} rows ({newFit.Count} new + {replay.Count} replayed), " +
              $"validation {valRows.Count}, new test {newTest.Count}, old test {d.Test}");

        // The challenger: the champion's recipe, started from the champion's weights, on the mix.
        var labels = ChampionLabels(champModel);
        foreach (var (r, i) in mix.Concat(valRows).Concat(newTest).Select((r, i) => (r, i)))
        {
            string lab = LabelledRows.Label(r, d.LabelColumn, o.Data, i);
            if (labels != null && !labels.Contains(lab)) throw new InvalidDataException($"{o.Data}: label '{lab}' is not one of the champion's ({string.Join(", ", labels)}); a new class needs a new head: train a new run");
        }
        recipe.Model.Init = champModel; recipe.Model.Config = null;
        recipe.Data.Train = mixPath; recipe.Data.Validation = valPath; recipe.Data.Test = newTestPath; recipe.Data.ValidationSplit = 0;
        recipe.Data.Labels = labels?.ToList();
        recipe.Training.Seed = o.Seed; recipe.OutputDir = Path.Combine(child, "run"); recipe.Search = null;
        var es = recipe.Training.EarlyStopping;
        if (es == null) recipe.Training.EarlyStopping = new EarlyStoppingSection { Metric = metric, Mode = "max", Patience = int.MaxValue };
        var sw = Stopwatch.StartNew();
        RunResult result;
        Directory.CreateDirectory(recipe.OutputDir);
        try
        {
            using var log = new StreamWriter(Path.Combine(child, "train.log")) { AutoFlush = true };
            result = TrainingRun.Run(recipe, new RunOptions { Device = o.Device, Say = log.WriteLine });
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A challenger that never trained is no refinement: its numbered folder goes (the error says why).
            try { Directory.Delete(child, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
        double wall = sw.Elapsed.TotalSeconds;
        try { Directory.Delete(Path.Combine(recipe.OutputDir, "checkpoints"), recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        string chalModel = ModelOf(recipe.OutputDir);
        var resolved = RecipeLoader.Load(Path.Combine(recipe.OutputDir, "recipe.resolved.yaml"));

        // Champion and challenger on both splits, with paired bootstrap intervals of challenger − champion.
        var scores = new JsonObject();
        var diffs = new Dictionary<string, ConfidenceInterval>();
        var est = new Dictionary<string, (double champ, double chal)>();
        SplitPredictions[] Score(string modelDir)
        {
            using var m = Scoring.Load(modelDir, resolved, o.Device);
            return [Scoring.Predict(m, d.Test, "old_test", resolved.Training.EvalBatchSize), Scoring.Predict(m, newTestPath, "new_test", resolved.Training.EvalBatchSize)];
        }
        var champ = Score(champModel);
        var chal = Score(chalModel);
        for (int s = 0; s < 2; s++)
        {
            string split = champ[s].Split;
            var a = champ[s].WithInterval(metric, o.BootstrapSamples, o.Seed);
            var b = chal[s].WithInterval(metric, o.BootstrapSamples, o.Seed);
            var diff = Bootstrap.Compute(champ[s].Gold.Count, idx => chal[s].Metric(metric, idx) - champ[s].Metric(metric, idx), o.BootstrapSamples, 0.95, o.Seed);
            diffs[split] = diff; est[split] = (a.Estimate, b.Estimate);
            scores[split] = new JsonObject
            {
                ["n"] = champ[s].Gold.Count,
                ["champion"] = Ci(a), ["challenger"] = Ci(b), ["difference"] = Ci(diff),
            };
        }
        double dOld = est["old_test"].chal - est["old_test"].champ, dNew = est["new_test"].chal - est["new_test"].champ;
        bool keepsOld = dOld >= -o.Tolerance, gainsNew = dNew > o.MinGain;
        bool promote = keepsOld && gainsNew;
        string F(double v) => v.ToString("+0.0000;-0.0000", CultureInfo.InvariantCulture);
        string reason = promote
            ? $"promoted: {metric} {F(dNew)} on the new test split (needs > {o.MinGain:0.####}) and {F(dOld)} on the old one (allowed down to -{o.Tolerance:0.####})"
            : "refused: " + string.Join(" and ", new[]
            {
                gainsNew ? null : $"{metric} {F(dNew)} on the new test split is not above {o.MinGain:0.####}",
                keepsOld ? null : $"{metric} {F(dOld)} on the old test split is worse than the tolerance -{o.Tolerance:0.####} (forgetting)",
            }.Where(x => x != null)) + "; the champion stays";

        var record = new JsonObject
        {
            ["refinement"] = n, ["parent_run"] = "../..", ["champion_model"] = Path.GetRelativePath(child, champModel), ["challenger_model"] = Path.GetRelativePath(child, chalModel),
            ["data"] = o.Data, ["new_test"] = o.NewTest ?? $"{o.TestFraction:0.##} of the new data (stratified, seed {o.Seed})", ["old_test"] = d.Test,
            ["replay"] = o.Replay, ["replay_from"] = champRecipe.Data.Train, ["rows"] = new JsonObject
            {
                ["new_train"] = newFit.Count, ["new_validation"] = newVal.Count, ["new_test"] = newTest.Count,
                ["replayed"] = replay.Count, ["old_validation"] = valRows.Count - newVal.Count, ["validation"] = valRows.Count,
            },
            ["metric"] = metric, ["tolerance"] = o.Tolerance, ["min_gain"] = o.MinGain, ["steps"] = result.State.Step, ["train_wall_s"] = Math.Round(wall, 1),
            ["scores"] = scores, ["decision"] = promote ? "promote" : "refuse", ["reason"] = reason,
            ["overrides"] = new JsonArray(o.Overrides.Select(x => (JsonNode)x).ToArray()), ["at"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
        };
        Io.WriteJson(Path.Combine(child, "refinement.json"), record);
        Io.WriteAtomically(Path.Combine(child, "report.md"), RecordMarkdown(record));

        // The parent folder: the lineage (every refinement, promoted or not) and the champion pointer.
        string lineagePath = Path.Combine(run, "lineage.json");
        var lineage = File.Exists(lineagePath) && JsonNode.Parse(File.ReadAllText(lineagePath)) is JsonObject l ? l : new JsonObject { ["root"] = ".", ["refinements"] = new JsonArray() };
        lineage["refinements"]!.AsArray().Add(new JsonObject
        {
            ["refinement"] = n, ["folder"] = Path.GetRelativePath(run, child), ["started_from"] = Path.GetRelativePath(run, champModel), ["data"] = o.Data,
            ["decision"] = record["decision"]!.GetValue<string>(), ["reason"] = reason, ["at"] = record["at"]!.GetValue<string>(),
            ["old_test"] = Ci(diffs["old_test"]), ["new_test"] = Ci(diffs["new_test"]),
        });
        if (promote)
        {
            var pointer = new JsonObject { ["run"] = Path.GetRelativePath(run, recipe.OutputDir), ["model"] = Path.GetRelativePath(run, chalModel), ["refinement"] = n, ["since"] = record["at"]!.GetValue<string>() };
            Io.WriteJson(Path.Combine(run, "champion.json"), pointer);
            lineage["champion"] = pointer.DeepClone();
        }
        else lineage["champion"] ??= new JsonObject { ["run"] = ".", ["model"] = Path.GetRelativePath(run, champModel) };
        Io.WriteJson(lineagePath, lineage);
        UpdateReport(run, lineage);
        record["child"] = child;
        return record;
    }

    static JsonObject Ci(ConfidenceInterval c) => new() { ["estimate"] = c.Estimate, ["low"] = c.Low, ["high"] = c.High };

    static IReadOnlyList<string>? ChampionLabels(string modelDir)
    {
        var cfg = HfConfig.Load(modelDir);
        return cfg.Json["id2label"] is JsonObject ? HfConfig.LabelsOf(cfg.Json, cfg.Source) : null;
    }

    public static TextTable Table(JsonObject record)
    {
        var t = new TextTable(["split", "n", "champion", "challenger", "challenger − champion (95% CI)"]);
        foreach (var (split, v) in record["scores"]!.AsObject())
        {
            string C(JsonNode? c) => $"{Io.F(Io.D(c!["estimate"]))} [{Io.F(Io.D(c["low"]))}, {Io.F(Io.D(c["high"]))}]";
            var df = v!["difference"]!;
            t.Add(split, v["n"]!.ToString(), C(v["champion"]), C(v["challenger"]),
                $"{Io.D(df["estimate"]).ToString("+0.0000;-0.0000", CultureInfo.InvariantCulture)} [{Io.F(Io.D(df["low"]))}, {Io.F(Io.D(df["high"]))}]");
        }
        return t;
    }

    static string RecordMarkdown(JsonObject r)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"# Refinement {r["refinement"]}: {r["decision"]}").AppendLine();
        sb.AppendLine($"Started from `{r["champion_model"]}`; new data {r["data"]} ({r["rows"]!["new_train"]} training rows + {r["rows"]!["replayed"]} replayed from {r["replay_from"]}, " +
                      $"replay {r["replay"]}); {r["steps"]} steps in {r["train_wall_s"]} s. Metric {r["metric"]}; tolerance on the old split {r["tolerance"]}.").AppendLine();
        sb.Append(Table(r).ToMarkdown()).AppendLine();
        sb.AppendLine($"**{r["reason"]}.**");
        return sb.ToString();
    }

    /// <summary>Rewrites the lineage section at the end of the parent's report.md (the rest of the report is untouched).</summary>
    static void UpdateReport(string run, JsonObject lineage)
    {
        string path = Path.Combine(run, "report.md");
        string text = File.Exists(path) ? File.ReadAllText(path) : "";
        int a = text.IndexOf(ReportBegin, StringComparison.Ordinal);
        if (a >= 0)
        {
            int b = text.IndexOf(ReportEnd, a, StringComparison.Ordinal);
            text = text[..a] + (b >= 0 ? text[(b + ReportEnd.Length)..].TrimStart('\n') : "");
        }
        var sb = new StringBuilder(text.TrimEnd()).AppendLine().AppendLine().AppendLine(ReportBegin).AppendLine("## Refinements").AppendLine();
        sb.AppendLine($"Champion: `{lineage["champion"]?["model"]}`.").AppendLine();
        var t = new TextTable(["#", "decision", "data", "old test Δ (95% CI)", "new test Δ (95% CI)", "at"]);
        string D(JsonNode? c) => $"{Io.D(c!["estimate"]).ToString("+0.0000;-0.0000", CultureInfo.InvariantCulture)} [{Io.F(Io.D(c["low"]))}, {Io.F(Io.D(c["high"]))}]";
        foreach (var r in lineage["refinements"]!.AsArray())
            t.Add(r!["refinement"]!.ToString(), r["decision"]!.ToString(), r["data"]!.ToString(), D(r["old_test"]), D(r["new_test"]), r["at"]!.ToString());
        sb.Append(t.ToMarkdown()).AppendLine().AppendLine("Each row's folder (refinements/N) holds refinement.json and report.md with the reason.").AppendLine(ReportEnd);
        Io.WriteAtomically(path, sb.ToString());
    }
}
