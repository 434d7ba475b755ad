// `tasklm learning-curve`: train on growing stratified fractions of the training data (same validation and test),
// for the model and the TF-IDF baseline, and say whether the curve still rises at 100% (more data would help) or is flat.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using TaskLM.Evaluation;
using TaskLM.Models;
using TaskLM.Recipes;
using TaskLM.Training;
using static TorchSharp.torch;

namespace TaskLM.Improve;

public sealed class LearningCurveOptions
{
    public required string RecipePath { get; init; }
    public IReadOnlyList<string> Overrides { get; init; } = [];
    public IReadOnlyList<double> Fractions { get; init; } = [0.1, 0.25, 0.5, 1.0];
    /// <summary>Seeds per fraction: the recipe's seed, then +1, +2, ... (the sample and the training both use it).</summary>
    public int Seeds { get; init; } = 1;
    public string? Metric { get; init; }
    /// <summary>The curve "still rises" when the last step gains at least this much per doubling of the data.</summary>
    public double MinGain { get; init; } = 0.01;
    public int BootstrapSamples { get; init; } = 1000;
    public bool Baseline { get; init; } = true;
    /// <summary>null = the recipe's output_dir + "-curve".</summary>
    public string? OutDir { get; init; }
    public Device Device { get; init; } = CPU;
    public Action<string> Say { get; init; } = _ => { };
}

public static class LearningCurve
{
    public static List<double> ParseFractions(string text)
    {
        var list = new List<double>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            list.Add(double.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out double f) && f > 0 && f <= 1 ? f
                : throw new ArgumentException($"--fractions: '{part}' is not a fraction in (0, 1]"));
        if (list.Count < 2) throw new ArgumentException("--fractions: give at least two fractions, e.g. 0.1,0.25,0.5,1");
        if (list.Distinct().Count() != list.Count) throw new ArgumentException("--fractions: a fraction is listed twice");
        return list.Order().ToList();
    }

    public static JsonObject Run(LearningCurveOptions o)
    {
        if (o.Seeds < 1) throw new ArgumentException("--seeds must be at least 1");
        var fractions = o.Fractions.Order().ToList();
        if (fractions.Count < 2) throw new ArgumentException("--fractions: give at least two fractions");
        var recipe = RecipeLoader.Load(o.RecipePath, o.Overrides);
        if (recipe.Task != "classification") throw new RecipeException($"{o.RecipePath}: learning-curve measures classification tasks (task is '{recipe.Task}')");
        if (recipe.Data.Train == null || recipe.Data.Test == null) throw new RecipeException($"{o.RecipePath}: data.train and data.test are required");
        if (recipe.Data.MaxTrainExamples > 0) throw new RecipeException($"{o.RecipePath}: data.max_train_examples={recipe.Data.MaxTrainExamples} would cut every fraction; set it to 0");
        string metric = Scoring.TaskMetric(recipe, o.Metric);
        string dir = o.OutDir ?? recipe.OutputDir.TrimEnd('/', '\\') + "-curve";
        Directory.CreateDirectory(dir);
        var d = recipe.Data;
        var trainRows = LabelledRows.Read(d.Train);
        // One validation set for every fraction: the recipe's file, else a stratified split of the training file made
        // once here (each run used to hold out its own share of its subset: 34 rows at 25%), and the fractions are drawn
        // from the rest, so the model and the baseline fit on the same rows.
        string? validation = d.Validation;
        if (validation == null && d.ValidationSplit > 0)
        {
            var (rest, held) = LabelledRows.StratifiedSplit(trainRows, d.LabelColumn, d.ValidationSplit, recipe.Training.Seed, d.Train);
            validation = LabelledRows.Write(Path.Combine(dir, "data", "validation.jsonl"), held);
            trainRows = rest;
            o.Say($"validation: {held.Count} rows of {d.Train} held out once ({d.ValidationSplit:P0}, stratified, seed {recipe.Training.Seed}) for every fraction → {validation}");
        }
        var validationTexts = o.Baseline && validation != null ? LabelledTexts.Read(validation, d.TextColumn, d.LabelColumn, d.TextPairColumn) : null;
        var test = o.Baseline ? LabelledTexts.Read(d.Test, d.TextColumn, d.LabelColumn, d.TextPairColumn) : null;
        var runs = new JsonArray();
        for (int si = 0; si < o.Seeds; si++)
        {
            int seed = recipe.Training.Seed + si;
            foreach (double f in fractions)
            {
                string tag = $"f{f.ToString("0.###", CultureInfo.InvariantCulture)}-s{seed}";
                var subset = LabelledRows.StratifiedSample(trainRows, d.LabelColumn, f, seed, d.Train);
                string subsetPath = LabelledRows.Write(Path.Combine(dir, "data", $"train-{tag}.jsonl"), subset);
                string runDir = Path.Combine(dir, "runs", tag);
                var r = RecipeLoader.Load(o.RecipePath, o.Overrides);
                r.Data.Train = subsetPath; r.Data.Validation = validation; r.Training.Seed = seed; r.OutputDir = runDir; r.Search = null;
                r.Evaluation.Baseline = false;   // fitted below on the same subset, with its own interval
                if (Directory.Exists(runDir)) Directory.Delete(runDir, recursive: true);
                Directory.CreateDirectory(runDir);
                var speed = new SpeedAndBudget(null);
                var sw = Stopwatch.StartNew();
                RunResult result;
                using (var log = new StreamWriter(Path.Combine(runDir, "train.log")) { AutoFlush = true })
                    result = TrainingRun.Run(r, new RunOptions { Device = o.Device, Callbacks = [speed], Say = log.WriteLine });
                double wall = sw.Elapsed.TotalSeconds;
                var trained = ModelSource.Resolve(runDir);
                var resolved = trained.Recipe!;
                string modelDir = trained.Folder!;
                ConfidenceInterval ci;
                using (var m = Scoring.Load(modelDir, resolved, o.Device))
                    ci = Scoring.Predict(m, d.Test, "test", resolved.Training.EvalBatchSize).WithInterval(metric, o.BootstrapSamples, seed);
                var row = new JsonObject
                {
                    ["fraction"] = f, ["seed"] = seed, ["train_examples"] = subset.Count, ["label_counts"] = LabelledRows.Counts(subset, d.LabelColumn),
                    ["value"] = ci.Estimate, ["ci_low"] = ci.Low, ["ci_high"] = ci.High, ["steps"] = result.State.Step,
                    ["train_wall_s"] = Math.Round(wall, 2), ["train_tokens_per_s"] = Math.Round(speed.TokensPerSecond, 1), ["run_dir"] = runDir,
                };
                if (test != null)
                {
                    var tr = LabelledTexts.Read(subsetPath, d.TextColumn, d.LabelColumn, d.TextPairColumn);
                    var bl = TextBaseline.Fit(tr.Texts, tr.Labels, options: new BaselineOptions { Validation = validationTexts, Seed = seed });
                    var pred = new SplitPredictions("test", test.Labels, bl.Predict(test.Texts), [], bl.Labels);
                    var bci = pred.WithInterval(metric, o.BootstrapSamples, seed);
                    row["baseline_value"] = bci.Estimate; row["baseline_ci_low"] = bci.Low; row["baseline_ci_high"] = bci.High;
                }
                try { Directory.Delete(Path.Combine(runDir, "checkpoints"), recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
                if (f == 1.0) MeasuredSpeeds.Record(r.Model.Init, resolved, o.Device, speed.TokensPerSecond, "learning-curve");
                runs.Add(row);
                o.Say($"fraction {f:0.###} seed {seed}: {subset.Count} examples, {metric} {ci.Estimate:0.0000} [{ci.Low:0.0000}, {ci.High:0.0000}]" +
                      (row["baseline_value"] is { } b ? $", baseline {Io.D(b):0.0000}" : "") + $", {result.State.Step} steps in {wall:0.0} s");
                GC.Collect();
            }
        }
        var points = Points(runs.OfType<JsonObject>().ToList(), fractions, "value", o.Seeds);
        var json = new JsonObject
        {
            ["recipe"] = o.RecipePath, ["out_dir"] = dir, ["metric"] = metric, ["test"] = d.Test, ["train"] = d.Train, ["train_rows"] = trainRows.Count,
            ["seeds"] = o.Seeds, ["min_gain_per_doubling"] = o.MinGain, ["device"] = o.Device.ToString(), ["threads"] = get_num_threads(),
            ["points"] = points, ["verdict"] = Verdict(points, o.MinGain, metric),
            ["runs"] = runs,
        };
        if (o.Baseline)
        {
            var bp = Points(runs.OfType<JsonObject>().ToList(), fractions, "baseline_value", o.Seeds);
            json["baseline_points"] = bp;
            json["baseline_verdict"] = Verdict(bp, o.MinGain, metric);
        }
        Io.WriteJson(Path.Combine(dir, "learning-curve.json"), json);
        Io.WriteAtomically(Path.Combine(dir, "learning-curve.md"), Markdown(json));
        WritePlot(dir, json, metric);
        return json;
    }

    /// <summary>One point per fraction: the mean over seeds; the interval is the run's bootstrap CI (one seed) or
    /// the lowest and highest value over seeds (several).</summary>
    static JsonArray Points(List<JsonObject> runs, List<double> fractions, string key, int seeds)
    {
        var a = new JsonArray();
        string low = key == "value" ? "ci_low" : "baseline_ci_low", high = key == "value" ? "ci_high" : "baseline_ci_high";
        foreach (double f in fractions)
        {
            var rs = runs.Where(r => Io.D(r["fraction"]) == f && r[key] != null).ToList();
            if (rs.Count == 0) continue;
            var v = rs.Select(r => Io.D(r[key])).ToList();
            double mean = v.Average();
            double sd = v.Count > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Count - 1)) : double.NaN;
            a.Add(new JsonObject
            {
                ["fraction"] = f, ["train_examples"] = (int)rs.Average(r => Io.D(r["train_examples"])), ["mean"] = mean, ["sd"] = double.IsFinite(sd) ? sd : null,
                ["low"] = seeds == 1 ? Io.D(rs[0][low]) : v.Min(), ["high"] = seeds == 1 ? Io.D(rs[0][high]) : v.Max(),
                ["interval"] = seeds == 1 ? "95% bootstrap" : "range over seeds", ["runs"] = rs.Count,
            });
        }
        return a;
    }

    /// <summary>Rising when the last step gains at least <paramref name="minGain"/> per doubling of the training data.</summary>
    public static JsonObject Verdict(JsonArray points, double minGain, string metric)
    {
        if (points.Count < 2) return new JsonObject { ["rising"] = null, ["text"] = "fewer than two points: no verdict" };
        var last = points[^1]!; var prev = points[^2]!;
        double n1 = Io.D(last["train_examples"]), n0 = Io.D(prev["train_examples"]);
        double gain = Io.D(last["mean"]) - Io.D(prev["mean"]);
        double perDoubling = n1 > n0 ? gain / Math.Log2(n1 / n0) : double.NaN;
        bool rising = perDoubling >= minGain;
        bool overlap = Io.D(last["low"]) <= Io.D(prev["high"]);
        string F(double v) => v.ToString("+0.000;-0.000", CultureInfo.InvariantCulture);
        string text = rising
            ? $"still rising: {F(gain)} {metric} from {n0:0} to {n1:0} examples ({F(perDoubling)} per doubling, threshold {minGain:0.###}); more data is likely to help"
            : $"flat: {F(gain)} {metric} from {n0:0} to {n1:0} examples ({F(perDoubling)} per doubling, below {minGain:0.###}); more of the same data is unlikely to help much";
        if (overlap) text += $"; the last two points' intervals overlap, so the step itself is within noise";
        return new JsonObject { ["rising"] = rising, ["gain"] = gain, ["gain_per_doubling"] = double.IsFinite(perDoubling) ? perDoubling : null, ["intervals_overlap"] = overlap, ["text"] = text };
    }

    public static TextTable Table(JsonObject json)
    {
        bool bl = json["baseline_points"] is JsonArray;
        var t = new TextTable(bl ? ["fraction", "examples", "model", "interval", "baseline", "interval "] : ["fraction", "examples", "model", "interval"]);
        var bps = json["baseline_points"] as JsonArray;
        var ps = json["points"]!.AsArray();
        for (int i = 0; i < ps.Count; i++)
        {
            var p = ps[i]!;
            var cells = new List<string> { Io.F(Io.D(p["fraction"]), "0.###"), p["train_examples"]!.ToString(), Io.F(Io.D(p["mean"])), $"[{Io.F(Io.D(p["low"]))}, {Io.F(Io.D(p["high"]))}]" };
            if (bps != null) { var b = bps[i]!; cells.AddRange([Io.F(Io.D(b["mean"])), $"[{Io.F(Io.D(b["low"]))}, {Io.F(Io.D(b["high"]))}]"]); }
            t.Add([.. cells]);
        }
        return t;
    }

    static string Markdown(JsonObject json)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"# Learning curve: {json["recipe"]}").AppendLine();
        sb.AppendLine($"{json["metric"]} on the test split ({json["test"]}) after training on stratified fractions of {json["train"]} ({json["train_rows"]} rows), " +
                      $"{json["seeds"]} seed(s) per fraction; device {json["device"]}, {json["threads"]} thread(s). Intervals: {json["points"]![0]!["interval"]}.").AppendLine();
        sb.Append(Table(json).ToMarkdown()).AppendLine();
        sb.AppendLine($"**Model: {json["verdict"]!["text"]}.**");
        if (json["baseline_verdict"] is JsonObject bv) sb.AppendLine().AppendLine($"Baseline (TF-IDF + logistic regression): {bv["text"]}.");
        sb.AppendLine().AppendLine("Plot: plots/learning-curve.svg.");
        return sb.ToString();
    }

    static void WritePlot(string dir, JsonObject json, string metric)
    {
        List<SvgPoint> Pts(JsonArray a) => a.Select(p => new SvgPoint(Io.D(p!["train_examples"]), Io.D(p["mean"]), Io.D(p["low"]), Io.D(p["high"]))).ToList();
        var series = new List<SvgSeries> { new("model", Pts(json["points"]!.AsArray()), Line: true) };
        if (json["baseline_points"] is JsonArray b) series.Add(new SvgSeries("TF-IDF baseline", Pts(b), Line: true));
        Directory.CreateDirectory(Path.Combine(dir, "plots"));
        Io.WriteAtomically(Path.Combine(dir, "plots", "learning-curve.svg"), SvgPlot.Chart($"{metric} vs training examples", "training examples", metric, series, logX: true));
    }
}
