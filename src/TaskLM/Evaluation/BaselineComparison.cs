// Model vs baseline on one split: both metric sets, the paired bootstrap CI of their difference, and the optional ensemble.
using System.Globalization;
using System.Text.Json.Nodes;

namespace TaskLM.Evaluation;

/// <summary>A probability ensemble of model and baseline: p = w·p_model + (1 − w)·p_baseline, with w chosen on validation.</summary>
public sealed record EnsembleSummary(double Weight, string ChosenBy, double ValidationScore, IReadOnlyDictionary<string, double> Metrics);

/// <summary>What eval.json holds about the baseline: <c>"baseline": {"method", "train_examples", "fit_seconds", "metrics"}</c>,
/// <c>"baseline_difference": {metric: {estimate, low, high, confidence, samples, seed}}</c> (model − baseline, paired
/// bootstrap over the split's examples), and, when the recipe asks, <c>"ensemble": {"weight", "chosen_by",
/// "validation_score", "metrics"}</c>.</summary>
public sealed class BaselineSummary
{
    /// <summary>How the baseline was made (featurizer and learner).</summary>
    public string Method { get; init; } = BaselineComparison.MethodName;
    public int TrainExamples { get; init; }
    public double FitSeconds { get; init; }
    /// <summary>The baseline's metrics, under the model's metric names.</summary>
    public Dictionary<string, double> Metrics { get; } = [];
    /// <summary>Model − baseline per headline metric, with its bootstrap interval.</summary>
    public Dictionary<string, ConfidenceInterval> Difference { get; } = [];
    public EnsembleSummary? Ensemble { get; set; }
    /// <summary>What the run ships when it is not the model alone: "baseline" or "ensemble" (null: the model).</summary>
    public string? Ships { get; private set; }
    /// <summary>The shipped product's full result on the split (confusion matrix, worst examples), when it is not the model.</summary>
    public EvalResult? Shipped { get; private set; }
    /// <summary>The model's own metrics when the headline metrics are the shipped product's.</summary>
    public Dictionary<string, double>? ModelMetrics { get; set; }

    /// <summary>Records that the run ships <paramref name="ships"/>, scoring <paramref name="result"/> on the split.</summary>
    public void Ship(string ships, EvalResult result) { Ships = ships; Shipped = result; }

    /// <summary>Makes the shipped product the headline of <paramref name="e"/> (eval.json's "metrics", the confusion matrix
    /// and worst examples), keeping the model's own metrics in <see cref="ModelMetrics"/>. Nothing changes when the
    /// model ships.</summary>
    public void MakeHeadline(EvalResult e)
    {
        if (Shipped == null) return;
        ModelMetrics = new Dictionary<string, double>(e.Metrics);
        e.Metrics.Clear();
        foreach (var (k, v) in Shipped.Metrics) e.Metrics[k] = v;
        e.PerClass = Shipped.PerClass; e.ConfusionLabels = Shipped.ConfusionLabels; e.ConfusionMatrix = Shipped.ConfusionMatrix;
        e.WorstExamples.Clear(); e.WorstExamples.AddRange(Shipped.WorstExamples);
        e.Intervals.Clear();
    }

    /// <summary>Adds the baseline keys to an eval.json object.</summary>
    public void WriteTo(JsonObject o)
    {
        var m = new JsonObject();
        foreach (var (k, v) in Metrics) m[k] = v;
        o["baseline"] = new JsonObject { ["method"] = Method, ["train_examples"] = TrainExamples, ["fit_seconds"] = Math.Round(FitSeconds, 3), ["metrics"] = m };
        o["baseline_difference"] = new JsonObject(Difference.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)new JsonObject
        {
            ["estimate"] = kv.Value.Estimate, ["low"] = kv.Value.Low, ["high"] = kv.Value.High,
            ["confidence"] = kv.Value.Confidence, ["samples"] = kv.Value.Samples, ["seed"] = kv.Value.Seed,
        })));
        if (Ships != null) o["ships"] = Ships;
        if (ModelMetrics != null) o["model_metrics"] = new JsonObject(ModelMetrics.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));
        if (Ensemble is { } e)
        {
            var em = new JsonObject();
            foreach (var (k, v) in e.Metrics) em[k] = v;
            o["ensemble"] = new JsonObject { ["weight"] = e.Weight, ["chosen_by"] = e.ChosenBy, ["validation_score"] = e.ValidationScore, ["metrics"] = em };
        }
    }

    /// <summary>Reads the baseline keys back (null when eval.json has none).</summary>
    public static BaselineSummary? ReadFrom(JsonObject o, string source)
    {
        if (o["baseline"] is not JsonObject b) return null;
        double Num(JsonNode? n, string key) => EvalResult.AsNumber(n) ?? throw new InvalidDataException($"{source}: \"{key}\" should be a number");
        var s = new BaselineSummary
        {
            Method = b["method"] is JsonValue mv && mv.TryGetValue(out string? name) ? name : BaselineComparison.MethodName,
            TrainExamples = b["train_examples"] == null ? 0 : (int)Num(b["train_examples"], "baseline.train_examples"),
            FitSeconds = b["fit_seconds"] == null ? 0 : Num(b["fit_seconds"], "baseline.fit_seconds"),
        };
        foreach (var (k, v) in b["metrics"] as JsonObject ?? throw new InvalidDataException($"{source}: baseline.metrics missing"))
            if (EvalResult.AsNumber(v) is double d) s.Metrics[k] = d;
        if (o["baseline_difference"] is JsonObject diff)
            foreach (var (k, v) in diff)
                if (v is JsonObject c)
                    s.Difference[k] = new ConfidenceInterval(Num(c["estimate"], $"baseline_difference.{k}.estimate"), Num(c["low"], $"baseline_difference.{k}.low"),
                        Num(c["high"], $"baseline_difference.{k}.high"), Num(c["confidence"], $"baseline_difference.{k}.confidence"),
                        (int)Num(c["samples"], $"baseline_difference.{k}.samples"), (int)Num(c["seed"], $"baseline_difference.{k}.seed"));
        if (o["ships"] is JsonValue sv && sv.TryGetValue(out string? ships)) s.Ships = ships;
        if (o["model_metrics"] is JsonObject mm)
        {
            s.ModelMetrics = [];
            foreach (var (k, v) in mm) if (EvalResult.AsNumber(v) is double d) s.ModelMetrics[k] = d;
        }
        if (o["ensemble"] is JsonObject en)
        {
            var em = new Dictionary<string, double>();
            foreach (var (k, v) in en["metrics"] as JsonObject ?? []) if (EvalResult.AsNumber(v) is double d) em[k] = d;
            s.Ensemble = new EnsembleSummary(Num(en["weight"], "ensemble.weight"), en["chosen_by"]?.ToString() ?? "", EvalResult.AsNumber(en["validation_score"]) ?? double.NaN, em);
        }
        return s;
    }
}

/// <summary>Compares a classifier's predictions with the baseline's on the same examples.</summary>
public static class BaselineComparison
{
    /// <summary>The baseline's name in eval.json and reports.</summary>
    public const string MethodName = "TF-IDF word 1-2 grams (+ char_wb 2-5 grams when validation prefers them), sublinear tf (scikit-learn's) + logistic regression (ML.NET L-BFGS), C chosen on validation";

    /// <summary>Metrics whose model − baseline difference gets a bootstrap interval.</summary>
    public static readonly string[] DifferenceMetrics = ["accuracy", "macro_f1", "weighted_f1"];

    /// <summary>Model vs baseline on one split. <paramref name="modelProba"/> and <paramref name="baseline"/>'s
    /// probabilities are rows per example with columns in <paramref name="labels"/> order; <paramref name="gold"/> are
    /// class names. <paramref name="validation"/> (gold, model and baseline probabilities on validation) turns on the
    /// ensemble, its weight chosen by <paramref name="ensembleMetric"/> on validation only.</summary>
    public static BaselineSummary Compare(IReadOnlyList<string> gold, IReadOnlyList<string> labels, float[][] modelProba, BaselineScore baseline,
        int samples = 1000, int seed = 0, (IReadOnlyList<string> Gold, float[][] Model, float[][] Baseline)? validation = null, string ensembleMetric = "macro_f1")
    {
        if (modelProba.Length != gold.Count || baseline.Predictions.Length != gold.Count)
            throw new ArgumentException($"model scored {modelProba.Length} examples, baseline {baseline.Predictions.Length}, gold has {gold.Count}");
        var s = new BaselineSummary
        {
            TrainExamples = baseline.TrainExamples, FitSeconds = baseline.Model.FitSeconds,
            Method = $"{MethodName}: {baseline.Model.Featurizer.Description}, C = {baseline.Model.C.ToString(System.Globalization.CultureInfo.InvariantCulture)} ({baseline.Model.CChosenOn})",
        };
        foreach (var (k, x) in baseline.Result.Metrics) s.Metrics[k] = x;
        var modelPred = Argmax(modelProba, labels);
        if (samples >= 2)
            foreach (var metric in DifferenceMetrics)
                s.Difference[metric] = Bootstrap.Compute(gold.Count,
                    idx => Metric(metric, gold, modelPred, idx) - Metric(metric, gold, baseline.Predictions, idx), samples, 0.95, seed);
        if (validation is { } v)
        {
            if (!DifferenceMetrics.Contains(ensembleMetric) && !ensembleMetric.StartsWith("f1_", StringComparison.Ordinal)) ensembleMetric = "macro_f1";
            // Grid from w = 1 (model alone) down to 0 (baseline alone), each weight scored on validation by the metric
            // averaged with its neighbours (w ± 0.05; the two ends have one): a validation split of a few hundred rows
            // counts its metric in single examples, and an optimum one example wide does not carry to new data. (The
            // quickstart's spam split: validation F1 on spam peaked at w = 0.50 alone, 0.985 against 0.970 and 0.982
            // beside it, and test F1 there was 0.971 against 0.982 at w = 0.45.) Ties go to the lower validation
            // log-loss (the better-calibrated mix), then to the larger model weight.
            var raw = new double[21];
            var losses = new double[21];
            for (int i = 0; i <= 20; i++)
            {
                var mix = Mix(v.Model, v.Baseline, i / 20.0);
                raw[i] = Metric(ensembleMetric, v.Gold, Argmax(mix, labels), Enumerable.Range(0, v.Gold.Count).ToArray());
                losses[i] = Baseline.MeanNll(v.Gold, mix, labels);
            }
            double bestW = 1, bestScore = double.NegativeInfinity, bestLoss = double.PositiveInfinity;
            for (int i = 20; i >= 0; i--)
            {
                double score = Enumerable.Range(i - 1, 3).Where(j => j is >= 0 and <= 20).Average(j => raw[j]);
                if (score > bestScore + 1e-12 || (score > bestScore - 1e-12 && losses[i] < bestLoss - 1e-12)) { bestScore = score; bestW = i / 20.0; bestLoss = losses[i]; }
            }
            bestScore = raw[(int)Math.Round(bestW * 20)];   // reported: the metric at the chosen weight itself
            var mixed = Mix(modelProba, baseline.Probabilities, bestW);
            var r = Baseline.Score(gold, Argmax(mixed, labels), mixed, labels, "test");
            s.Ensemble = new EnsembleSummary(bestW, $"{ensembleMetric} on validation, averaged with the neighbouring weights (grid 0, 0.05, ..., 1; ties to the lower validation log-loss)", bestScore, r.Metrics);
        }
        return s;
    }

    /// <summary>Class probabilities from logits rows (softmax).</summary>
    public static float[] Softmax(ReadOnlySpan<float> logits)
    {
        float max = float.NegativeInfinity;
        foreach (var x in logits) max = Math.Max(max, x);
        var p = new float[logits.Length];
        double sum = 0;
        for (int i = 0; i < p.Length; i++) { p[i] = MathF.Exp(logits[i] - max); sum += p[i]; }
        for (int i = 0; i < p.Length; i++) p[i] = (float)(p[i] / sum);
        return p;
    }

    /// <summary>w·a + (1 − w)·b, row by row: (N, C).</summary>
    public static float[][] Mix(float[][] a, float[][] b, double w) =>
        a.Select((row, i) => row.Select((x, c) => (float)(w * x + (1 - w) * b[i][c])).ToArray()).ToArray();

    /// <summary>The most probable class name of each row: (N, C) → N labels.</summary>
    internal static string[] Argmax(float[][] proba, IReadOnlyList<string> labels) => proba.Select(p => labels[TextBaseline.ArgMax(p)]).ToArray();

    // A headline metric over a multiset of example indices (sklearn definitions, via ClassificationMetrics).
    static double Metric(string metric, IReadOnlyList<string> gold, IReadOnlyList<string> pred, IReadOnlyList<int> idx)
    {
        var g = new string[idx.Count]; var p = new string[idx.Count];
        for (int i = 0; i < idx.Count; i++) { g[i] = gold[idx[i]]; p[i] = pred[idx[i]]; }
        if (metric == "accuracy")
        {
            int ok = 0;
            for (int i = 0; i < g.Length; i++) if (g[i] == p[i]) ok++;
            return ok / (double)g.Length;
        }
        var r = ClassificationMetrics.Compute(g, p);
        return metric switch
        {
            "macro_f1" => r.Macro.F1,
            "weighted_f1" => r.Weighted.F1,
            _ when metric.StartsWith("f1_", StringComparison.Ordinal) => r.PerClass.TryGetValue(metric[3..], out var c) ? c.F1 : 0,
            _ => throw new ArgumentException($"no bootstrap for metric '{metric}'"),
        };
    }

    /// <summary>The side-by-side table of a result with a baseline: metric | model | baseline | model − baseline
    /// [95% CI] (| ensemble). Headline metrics first, then loss and the per-class F1s both sides have.</summary>
    public static (IReadOnlyList<string> Header, IReadOnlyList<IReadOnlyList<string>> Rows) SideBySide(IReadOnlyDictionary<string, double> model, BaselineSummary b)
    {
        model = b.ModelMetrics ?? model;   // a run that ships the baseline or a mix: the headline is that, the column is the model
        var header = new List<string> { "metric", "model", "baseline", "model − baseline [95% CI]" };
        if (b.Ensemble != null) header.Add($"ensemble (w = {b.Ensemble.Weight:0.00}){(b.Ships != null ? ", shipped" : "")}");
        var names = DifferenceMetrics.Concat(["loss"]).Concat(model.Keys.Where(k => k.StartsWith("f1_", StringComparison.Ordinal)))
            .Where(k => model.ContainsKey(k) && b.Metrics.ContainsKey(k)).Distinct();
        var rows = new List<IReadOnlyList<string>>();
        foreach (var k in names)
        {
            var row = new List<string> { k, EvalResult.Format(model[k]), EvalResult.Format(b.Metrics[k]),
                b.Difference.TryGetValue(k, out var ci) ? FormatDifference(ci) : Signed(model[k] - b.Metrics[k]) };
            if (b.Ensemble != null) row.Add(b.Ensemble.Metrics.TryGetValue(k, out var e) ? EvalResult.Format(e) : "–");
            rows.Add(row);
        }
        return (header, rows);
    }

    /// <summary>The report block of <see cref="SideBySide"/>.</summary>
    public static ReportTable Table(EvalResult e, string title = "Model vs baseline")
    {
        var (h, rows) = SideBySide(e.Metrics, e.Baseline ?? throw new ArgumentException("the result has no baseline"));
        string verdict = Verdict(e.Baseline.ModelMetrics ?? e.Metrics, e.Baseline) is { } v ? " " + v : "";
        if (e.Baseline.Ships is { } ships)
            verdict += $" The run ships the {ships} (chosen on validation; its metrics are the headline above): predict, serve and evaluate run it.";
        return new ReportTable($"{title}: {e.Baseline.Method}, fitted on {e.Baseline.TrainExamples} training examples in {e.Baseline.FitSeconds:0.0} s.{verdict}", h, rows);
    }

    /// <summary>Who won, in words, on <paramref name="metric"/> (macro-F1 by default): by the paired bootstrap interval of
    /// model − baseline when there is one (above zero: the model; below: the baseline; across zero: a tie), else by the
    /// two values. Null when the baseline has no value for the metric.</summary>
    public static string? Verdict(IReadOnlyDictionary<string, double> model, BaselineSummary b, string metric = "macro_f1")
    {
        if (!b.Metrics.TryGetValue(metric, out double bv) || !model.TryGetValue(metric, out double mv)) return null;
        string values = $"{metric} {EvalResult.Format(mv)} vs {EvalResult.Format(bv)}";
        if (b.Difference.TryGetValue(metric, out var ci))
        {
            string interval = $"model − baseline {FormatDifference(ci)}, 95% CI";
            if (ci.Low > 0) return $"The model beats the baseline: {values} ({interval}).";
            if (ci.High < 0) return $"The baseline beats the model: {values} ({interval}); the baseline is the better product here (tasklm baseline fits it in seconds).";
            return $"Model and baseline are tied: {values} ({interval} includes 0).";
        }
        return mv > bv ? $"The model scores above the baseline: {values}." : mv < bv ? $"The baseline scores above the model: {values}." : $"Model and baseline score the same: {values}.";
    }

    /// <summary>Formats a difference with its interval: "+0.0123 [−0.0040, +0.0290]".</summary>
    public static string FormatDifference(ConfidenceInterval ci) =>
        $"{Signed(ci.Estimate)} [{Signed(ci.Low)}, {Signed(ci.High)}]";

    static string Signed(double v) => (v >= 0 ? "+" : "") + v.ToString("0.0000", CultureInfo.InvariantCulture);
}
