// `tasklm compare`: fine-tune several models on one task with the same budget and seed, then measure each one's
// task metric (bootstrap CI), size, training speed, inference latency/throughput and peak memory; table, plots, advice.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using TaskLM.Hf;
using TaskLM.Models;
using TaskLM.Recipes;
using TaskLM.Training;
using static TorchSharp.torch;

namespace TaskLM.Improve;

/// <summary>What a comparison runs.</summary>
public sealed class CompareOptions
{
    public required string RecipePath { get; init; }
    /// <summary>Model specs: preset names (random init), shipped bases or any HF folder.</summary>
    public required IReadOnlyList<string> Models { get; init; }
    /// <summary>key=value overrides applied to every model's recipe.</summary>
    public IReadOnlyList<string> Overrides { get; init; } = [];
    /// <summary>"300" or "300steps" (optimizer steps), "10m", "90s" (wall time per model); null = the recipe's epochs.</summary>
    public string? Budget { get; init; }
    /// <summary>Training seed of every model (null = the recipe's).</summary>
    public int? Seed { get; init; }
    /// <summary>The metric compared (default: the recipe's early-stopping metric, macro_f1 for classification).</summary>
    public string? Metric { get; init; }
    /// <summary>A model "fits" when its metric is within this of the best one (absolute, in the metric's units).</summary>
    public double Tolerance { get; init; } = 0.01;
    public int BootstrapSamples { get; init; } = 1000;
    /// <summary>null = the recipe's output_dir + "-compare".</summary>
    public string? OutDir { get; init; }
    public Device Device { get; init; } = CPU;
    public Action<string> Say { get; init; } = _ => { };
    /// <summary>Compare the models that work when some do not (each failure a row of compare.json); otherwise one
    /// model that cannot run stops the comparison before anything trains.</summary>
    public bool KeepGoing { get; init; }
}

/// <summary>A training budget: optimizer steps or wall-clock seconds per model.</summary>
public sealed record Budget(int? Steps, double? Seconds)
{
    public static Budget? Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        string t = text.Trim().ToLowerInvariant();
        static double Num(string s, string whole) => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v > 0 ? v
            : throw new ArgumentException($"--budget '{whole}': use steps (300, 300steps) or time (10m, 90s, 1.5h)");
        if (t.EndsWith("steps", StringComparison.Ordinal)) return new((int)Num(t[..^5], text), null);
        if (t.EndsWith("min", StringComparison.Ordinal)) return new(null, 60 * Num(t[..^3], text));
        if (t.EndsWith('m')) return new(null, 60 * Num(t[..^1], text));
        if (t.EndsWith('s')) return new(null, Num(t[..^1], text));
        if (t.EndsWith('h')) return new(null, 3600 * Num(t[..^1], text));
        double n = Num(t, text);
        if (n != Math.Floor(n)) throw new ArgumentException($"--budget '{text}': a step count is a whole number");
        return new((int)n, null);
    }

    public override string ToString() => Steps is { } s ? $"{s} steps" : $"{Seconds:0.#} s";
}

/// <summary>Runs comparisons and writes compare.json, compare.md and plots/*.svg into the comparison folder.</summary>
public static class Compare
{
    /// <summary>The JSON keys every measured row carries (the test checks them all).</summary>
    public static readonly string[] Columns =
    [
        "model", "family", "kind", "parameters", "trainable_parameters", "metric", "value", "ci_low", "ci_high", "steps",
        "train_wall_s", "train_tokens_per_s", "latency_ms_batch1", "throughput_batch1", "throughput_batch32", "peak_rss_bytes", "test_n", "run_dir",
    ];

    public static JsonObject Run(CompareOptions o)
    {
        if (o.Models.Count < 2) throw new ArgumentException("--models: give at least two models to compare (comma-separated)");
        if (o.Models.Distinct().Count() != o.Models.Count) throw new ArgumentException("--models: a model is listed twice");
        var budget = Budget.Parse(o.Budget);
        var baseRecipe = RecipeLoader.Load(o.RecipePath, o.Overrides);
        if (baseRecipe.Data.Test == null) throw new RecipeException($"{o.RecipePath}: data.test is required to compare (every model is scored on it)");
        string metric = Scoring.TaskMetric(baseRecipe, o.Metric);
        if (baseRecipe.Task != "classification") throw new RecipeException($"{o.RecipePath}: compare measures classification tasks (task is '{baseRecipe.Task}')");
        string dir = o.OutDir ?? baseRecipe.OutputDir.TrimEnd('/', '\\') + "-compare";
        // Every model is checked before any trains: a typo'd preset used to be found only after the others had trained.
        var refused = new Dictionary<string, string>();
        foreach (var spec in o.Models)
            try { Check(o, spec, budget, dir); }
            catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or RecipeException or InvalidOperationException)
            { refused[spec] = e.Message.Split('\n')[0]; }
        if (refused.Count > 0 && !o.KeepGoing)
            throw new ArgumentException("--models: " + string.Join("; ", refused.Select(kv => $"{kv.Key}: {kv.Value}"))
                + " — nothing was trained; fix the list, or pass --keep-going to compare the others");
        if (o.Models.Count - refused.Count < 1) throw new ArgumentException("--models: no model can run: " + string.Join("; ", refused.Select(kv => $"{kv.Key}: {kv.Value}")));
        Directory.CreateDirectory(dir);
        var rows = new JsonArray();
        foreach (var spec in o.Models)
        {
            o.Say($"== {spec}");
            JsonObject row;
            if (refused.TryGetValue(spec, out var why))
            {
                rows.Add(new JsonObject { ["model"] = spec, ["error"] = why });
                o.Say($"{spec}: skipped: {why}");
                continue;
            }
            try { row = One(o, spec, budget, metric, dir); }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                row = new JsonObject { ["model"] = spec, ["error"] = e.Message.Split('\n')[0] };
                o.Say($"{spec}: failed: {e.Message.Split('\n')[0]}");
            }
            rows.Add(row);
            GC.Collect();
        }
        var ok = rows.OfType<JsonObject>().Where(r => r["error"] == null).ToList();
        if (ok.Count == 0) throw new InvalidOperationException($"every model failed; the first error: {rows[0]!["error"]}");
        bool maximize = metric is not ("loss" or "perplexity");
        var (pick, reason) = Advise(ok, metric, maximize, o.Tolerance);
        int failed = rows.OfType<JsonObject>().Count(r => r["error"] != null);
        var json = new JsonObject
        {
            ["recipe"] = o.RecipePath, ["out_dir"] = dir, ["task"] = baseRecipe.Task, ["metric"] = metric, ["test"] = baseRecipe.Data.Test,
            ["budget"] = budget?.ToString() ?? "the recipe's", ["seed"] = o.Seed ?? baseRecipe.Training.Seed, ["device"] = o.Device.ToString(),
            ["threads"] = get_num_threads(), ["tolerance"] = o.Tolerance, ["bootstrap_samples"] = o.BootstrapSamples,
            ["rows"] = rows, ["recommendation"] = new JsonObject { ["model"] = pick, ["reason"] = reason }, ["failed"] = failed,
        };
        Io.WriteJson(Path.Combine(dir, "compare.json"), json);
        Io.WriteAtomically(Path.Combine(dir, "compare.md"), Markdown(json));
        WritePlots(dir, ok, metric);
        return json;
    }

    /// <summary>The recommendation's name for the in-run TF-IDF + logistic-regression baseline.</summary>
    public const string BaselineName = "baseline";

    /// <summary>What can be known of a model before it trains: its spec resolves, its recipe loads, text has a tokenizer,
    /// and a GPT-2 classifier batching more than one sequence has pad_token_id (HF's rule).</summary>
    static void Check(CompareOptions o, string spec, Budget? budget, string dir)
    {
        var r = RecipeFor(o, spec, budget, Path.Combine(dir, "runs", Io.Slug(spec)));
        var src = ModelSource.Resolve(r.Model.Init);
        if (r.Tokenizer == null && src.Tokenizer == null)
            throw new ArgumentException($"no tokenizer: {src} has no tokenizer files; give one with tokenizer=<folder> (a recipe's own tokenizer is dropped for a model of another family)");
        bool pad = r.Model.Config is { } set && HfConfig.PadTokenIdOf(set, "model.config") is not null
            || src.Config is { } cfg && HfConfig.PadTokenIdOf(cfg) is not null;
        if (src.ModelType == "gpt2" && r.Task == "classification" && r.Training.BatchSize > 1 && !pad)
            throw new ArgumentException("GPT-2 sequence classification needs pad_token_id in its config to pool batches of more than one sequence (as in HF); set model.config.pad_token_id or training.batch_size=1");
    }

    static JsonObject One(CompareOptions o, string spec, Budget? budget, string metric, string dir)
    {
        string runDir = Path.Combine(dir, "runs", Io.Slug(spec));
        var recipe = RecipeFor(o, spec, budget, runDir);
        if (Directory.Exists(runDir)) Directory.Delete(runDir, recursive: true);
        Directory.CreateDirectory(runDir);
        var speed = new SpeedAndBudget(budget?.Seconds);
        bool peakReset = PeakMemory.Reset();
        var sw = Stopwatch.StartNew();
        RunResult result;
        using (var log = new StreamWriter(Path.Combine(runDir, "train.log")) { AutoFlush = true })
            result = TrainingRun.Run(recipe, new RunOptions { Device = o.Device, Callbacks = [speed], Say = log.WriteLine });
        double trainWall = sw.Elapsed.TotalSeconds;
        // The model that is scored: best/ (by the recipe's validation metric) when it exists.
        var trained = ModelSource.Resolve(runDir);
        string modelDir = trained.Folder!;
        var resolved = trained.Recipe!;
        using var m = Scoring.Load(modelDir, resolved, o.Device);
        var pred = Scoring.Predict(m, resolved.Data.Test!, "test", resolved.Training.EvalBatchSize);
        var ci = pred.WithInterval(metric, o.BootstrapSamples, o.Seed ?? resolved.Training.Seed);
        var (lat, thr1, thr32) = Scoring.Speed(m, Scoring.Examples(m, resolved.Data.Test!));
        long peak = PeakMemory.Bytes();
        try { Directory.Delete(Path.Combine(runDir, "checkpoints"), recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        string family = m.Model.ModelType;
        var row = new JsonObject
        {
            ["model"] = spec, ["family"] = family, ["kind"] = ModelSource.IsPretrained(spec) ? "pretrained folder" : "preset (random init)",
            ["parameters"] = result.TotalParameters, ["trainable_parameters"] = result.TrainableParameters,
            ["metric"] = metric, ["value"] = ci.Estimate, ["ci_low"] = ci.Low, ["ci_high"] = ci.High, ["steps"] = result.State.Step,
            ["train_wall_s"] = Math.Round(trainWall, 2), ["train_tokens_per_s"] = Math.Round(speed.TokensPerSecond, 1),
            ["latency_ms_batch1"] = Math.Round(lat, 3), ["throughput_batch1"] = Math.Round(thr1, 2), ["throughput_batch32"] = Math.Round(thr32, 2),
            ["peak_rss_bytes"] = peak, ["peak_rss_per_model"] = peakReset, ["test_n"] = pred.Gold.Count, ["max_length"] = resolved.Data.MaxLength,
            ["stop_reason"] = result.StopReason, ["run_dir"] = runDir,
        };
        if (File.Exists(Path.Combine(runDir, "eval.json")) && JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, "eval.json")))?["baseline"]?["metrics"]?[metric] is { } bv)
            row["baseline_value"] = Io.D(bv);
        MeasuredSpeeds.Record(spec, resolved, o.Device, speed.TokensPerSecond, "compare");
        o.Say($"{spec}: {metric} {ci.Estimate:0.0000} [{ci.Low:0.0000}, {ci.High:0.0000}], {Io.Count(result.TotalParameters)} params, " +
              $"{result.State.Step} steps in {trainWall:0.0} s ({speed.TokensPerSecond:0} tok/s), latency {lat:0.0} ms, {thr32:0.0} ex/s at batch 32, peak {Io.MiB(peak)}");
        return row;
    }

    /// <summary>The recipe of one model: the base recipe with model.init set. A model of another family than the
    /// recipe's own drops the recipe's tokenizer and model.config (they belong to the recipe's model); a folder
    /// brings its own tokenizer.</summary>
    public static Recipe RecipeFor(CompareOptions o, string spec, Budget? budget, string runDir)
    {
        var r = RecipeLoader.Load(o.RecipePath, [.. o.Overrides, $"model.init={spec}"]);
        var original = RecipeLoader.Load(o.RecipePath, o.Overrides);
        if (spec != original.Model.Init)
        {
            string fam = FamilyOf(spec), was = FamilyOf(original.Model.Init);
            bool pretrained = ModelSource.IsPretrained(spec);
            if (pretrained) r.Tokenizer = null;
            if (fam != was) { r.Model.Config = null; if (!pretrained) r.Tokenizer = null; }
            if (pretrained) r.Model.Config = null;   // a folder's config.json is the model
        }
        if (budget?.Steps is { } steps) r.Training.MaxSteps = steps;
        if (o.Seed is { } seed) r.Training.Seed = seed;
        r.OutputDir = runDir;
        r.Search = null;
        return r;
    }

    /// <summary>gpt2 | bert for a preset name or a model (its config.json's model_type).</summary>
    public static string FamilyOf(string spec) =>
        ModelSource.Resolve(spec).ModelType ?? throw new InvalidDataException($"{spec}: config.json has no model_type");

    /// <summary><see cref="Recommend"/> among the models, unless the TF-IDF baseline every run fits on the same training
    /// split (a row's baseline_value) beats every model: then the advice is the baseline, and the reason says so.</summary>
    public static (string Model, string Reason) Advise(IReadOnlyList<JsonObject> rows, string metric, bool maximize, double tolerance)
    {
        var (pick, reason) = Recommend(rows, metric, maximize, tolerance);
        var baselines = rows.Select(r => r["baseline_value"]).OfType<JsonNode>().Select(Io.D).Where(double.IsFinite).ToList();
        if (baselines.Count == 0) return (pick, reason);
        double bl = maximize ? baselines.Max() : baselines.Min();
        double bestModel = maximize ? rows.Max(r => Io.D(r["value"])) : rows.Min(r => Io.D(r["value"]));
        if (maximize ? bl <= bestModel : bl >= bestModel) return (pick, reason);
        string F(double v) => v.ToString("0.000", CultureInfo.InvariantCulture);
        return (BaselineName, $"the TF-IDF + logistic-regression baseline ({F(bl)} {metric}) beats every model (the best, {F(bestModel)}): " +
                              $"ship the baseline (tasklm baseline), or give the models more budget or a pre-trained encoder; among the models, {reason}");
    }

    /// <summary>The best model by the metric, then the fastest (batch-1 latency) model within the tolerance of it.</summary>
    public static (string Model, string Reason) Recommend(IReadOnlyList<JsonObject> rows, string metric, bool maximize, double tolerance)
    {
        double V(JsonObject r) => Io.D(r["value"]);
        double Lat(JsonObject r) => Io.D(r["latency_ms_batch1"]);
        long P(JsonObject r) => (long)Io.D(r["parameters"]);
        string Name(JsonObject r) => r["model"]!.GetValue<string>();
        var best = maximize ? rows.MaxBy(V)! : rows.MinBy(V)!;
        var near = rows.Where(r => maximize ? V(r) >= V(best) - tolerance : V(r) <= V(best) + tolerance).ToList();
        var pick = near.MinBy(Lat)!;
        string F(double v) => v.ToString("0.000", CultureInfo.InvariantCulture);
        if (ReferenceEquals(pick, best))
        {
            var others = rows.Where(r => !ReferenceEquals(r, best)).ToList();
            string gap = others.Count == 0 ? "" : $"; the next best, {Name(maximize ? others.MaxBy(V)! : others.MinBy(V)!)}, is {F(Math.Abs(V(best) - V(maximize ? others.MaxBy(V)! : others.MinBy(V)!)))} {metric} behind";
            return (Name(best), near.Count == 1
                ? $"{Name(best)} has the best {metric} ({F(V(best))}) and no other model is within {F(tolerance)} of it{gap}"
                : $"{Name(best)} has the best {metric} ({F(V(best))}) and is also the fastest of the {near.Count} models within {F(tolerance)} of it");
        }
        double gapV = Math.Abs(V(best) - V(pick));
        bool overlap = Io.D(pick["ci_high"]) >= Io.D(best["ci_low"]) && Io.D(best["ci_high"]) >= Io.D(pick["ci_low"]);
        return (Name(pick), $"{Name(pick)} is within {F(gapV)} {metric} of {Name(best)} (tolerance {F(tolerance)}) at {Ratio(Lat(pick), Lat(best))} its latency " +
                            $"and {Ratio(P(pick), P(best))} its parameters" + (overlap ? "; their 95% intervals overlap" : "; their 95% intervals do not overlap"));
    }

    static string Ratio(double a, double b) => b <= 0 ? "?" : a / b is var r && r < 1 ? $"{r:0.00}×" : $"{r:0.0}×";

    /// <summary>The comparison as a Markdown table with the recommendation.</summary>
    public static string Markdown(JsonObject json)
    {
        var t = Table(json);
        var sb = new StringBuilder();
        sb.AppendLine($"# Model comparison: {json["recipe"]}").AppendLine();
        sb.AppendLine($"Task metric **{json["metric"]}** on the test split ({json["test"]}), 95% bootstrap interval ({json["bootstrap_samples"]} resamples). " +
                      $"Budget: {json["budget"]} per model, seed {json["seed"]}, device {json["device"]}, {json["threads"]} thread(s).").AppendLine();
        sb.Append(t.ToMarkdown()).AppendLine();
        sb.AppendLine("tok/s: training tokens per second inside optimizer steps (padding included); latency: median forward time of one test example; " +
                      "ex/s: test examples per second at batch 1 and 32; peak RSS: the process's peak resident memory while that model trained and was scored.").AppendLine();
        foreach (var r in json["rows"]!.AsArray().OfType<JsonObject>().Where(r => r["error"] != null)) sb.AppendLine($"- {r["model"]}: failed: {r["error"]}");
        sb.AppendLine($"**Recommendation: {json["recommendation"]!["model"]}** — {json["recommendation"]!["reason"]}.");
        sb.AppendLine().AppendLine("Plots: plots/metric-vs-parameters.svg, plots/metric-vs-latency.svg.");
        return sb.ToString();
    }

    /// <summary>The table people read (console and Markdown share it).</summary>
    public static TextTable Table(JsonObject json)
    {
        string metric = json["metric"]!.GetValue<string>();
        var t = new TextTable(["model", "params", metric, "95% CI", "baseline", "steps", "train s", "tok/s", "latency ms", "ex/s b1", "ex/s b32", "peak RSS"]);
        foreach (var r in json["rows"]!.AsArray().OfType<JsonObject>().Where(r => r["error"] == null))
        {
            double D(string k) => Io.D(r[k]);
            t.Add(r["model"]!.GetValue<string>(), Io.Count((long)Io.D(r["parameters"])), Io.F(D("value")), $"[{Io.F(D("ci_low"))}, {Io.F(D("ci_high"))}]",
                r["baseline_value"] is { } b ? Io.F(Io.D(b)) : "-", r["steps"]!.ToString(), Io.F(D("train_wall_s"), "0.0"), Io.F(D("train_tokens_per_s"), "0"),
                Io.F(D("latency_ms_batch1"), "0.00"), Io.F(D("throughput_batch1"), "0.0"), Io.F(D("throughput_batch32"), "0.0"), Io.MiB((long)Io.D(r["peak_rss_bytes"])));
        }
        return t;
    }

    static void WritePlots(string dir, IReadOnlyList<JsonObject> rows, string metric)
    {
        SvgPoint Pt(JsonObject r, string x) => new(Io.D(r[x]), Io.D(r["value"]), Io.D(r["ci_low"]), Io.D(r["ci_high"]), r["model"]!.GetValue<string>());
        var plots = Path.Combine(dir, "plots");
        Directory.CreateDirectory(plots);
        Io.WriteAtomically(Path.Combine(plots, "metric-vs-parameters.svg"), SvgPlot.Chart($"{metric} vs parameters", "parameters", metric,
            [new SvgSeries("models (95% CI)", rows.Select(r => Pt(r, "parameters")).ToList())], logX: true));
        Io.WriteAtomically(Path.Combine(plots, "metric-vs-latency.svg"), SvgPlot.Chart($"{metric} vs latency (batch 1)", "latency per example (ms)", metric,
            [new SvgSeries("models (95% CI)", rows.Select(r => Pt(r, "latency_ms_batch1")).ToList())], logX: true));
    }
}
