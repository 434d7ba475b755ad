// The result of one evaluation (eval.json): metrics, per-class scores, confusion matrix, worst examples, samples.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaskLM.Evaluation;

/// <summary>An example for manual inspection: its text, gold and predicted answer, and its loss (higher = worse).</summary>
public sealed record WorstExample(string Text, string? Gold, string? Pred, double? Loss);

/// <summary>A generation sample: the prompt, what the model wrote, and the reference when there is one.</summary>
public sealed record GenerationSample(string Prompt, string Output, string? Reference);

/// <summary>What eval.json holds. <c>tasklm evaluate</c> fills it from a model's predictions (see the
/// <c>For*</c> builders: they take predictions, golds, texts and losses, never a model); <c>tasklm report</c>
/// reads it back. JSON: <c>{"task", "split", "n", "metrics": {name: number, ..., "per_class": {label:
/// {precision, recall, f1, support}}}, "confidence_intervals": {metric: {estimate, low, high, confidence,
/// samples, seed}}, "confusion_matrix": {"labels": [...], "matrix": [[...]]}, "worst_examples": [{text, gold,
/// pred, loss}], "samples": [{prompt, output, reference}]}</c>; everything but metrics is optional.</summary>
public sealed class EvalResult
{
    public string? Task { get; set; }
    public string? Split { get; set; }
    public int? N { get; set; }
    /// <summary>Scalar metrics in display order (accuracy, macro_f1, loss, perplexity, bleu, ...).</summary>
    public Dictionary<string, double> Metrics { get; } = [];
    public Dictionary<string, PrfScore>? PerClass { get; set; }
    public Dictionary<string, ConfidenceInterval> Intervals { get; } = [];
    public IReadOnlyList<string>? ConfusionLabels { get; set; }
    public int[,]? ConfusionMatrix { get; set; }
    public List<WorstExample> WorstExamples { get; } = [];
    public List<GenerationSample> Samples { get; } = [];
    /// <summary>The TF-IDF + logistic-regression baseline on the same split (same metric names), when one was fitted.</summary>
    public BaselineSummary? Baseline { get; set; }
    /// <summary>Where the evaluated model's base weights came from (Hub commit, package hash), when known.</summary>
    public System.Text.Json.Nodes.JsonObject? ModelSource { get; set; }

    /// <summary>A classification result: sklearn-style metrics, confusion matrix, and the worst examples —
    /// misclassified ones first, then by loss (the gold class's negative log-probability) when given.
    /// <paramref name="texts"/> (the inputs) and <paramref name="losses"/> (per example) may be null.</summary>
    public static EvalResult ForClassification(IReadOnlyList<string> gold, IReadOnlyList<string> pred, IReadOnlyList<string>? texts = null,
        IReadOnlyList<double>? losses = null, int worst = 10, string? split = null)
    {
        var r = ClassificationMetrics.Compute(gold, pred);
        var e = new EvalResult { Task = "classification", Split = split, N = gold.Count, PerClass = r.PerClass.ToDictionary(), ConfusionLabels = r.Labels, ConfusionMatrix = r.ConfusionMatrix };
        foreach (var (k, v) in r.ToMetrics()) if (v is double d) e.Metrics[k] = d;
        if (texts != null)
        {
            var order = Enumerable.Range(0, gold.Count)
                .OrderByDescending(i => gold[i] != pred[i])
                .ThenByDescending(i => losses?[i] ?? 0)
                .Take(worst);
            foreach (int i in order)
                if (gold[i] != pred[i] || losses != null) e.WorstExamples.Add(new WorstExample(texts[i], gold[i], pred[i], losses?[i]));
        }
        return e;
    }

    /// <summary>A language-model result: loss, perplexity, bits per token (and per byte when the byte count
    /// of the scored text is given), and the highest-loss passages (<paramref name="passages"/>: texts with their
    /// mean per-token loss; may be null).</summary>
    public static EvalResult ForLanguageModel(LmScore score, long? bytes = null, IReadOnlyList<(string Text, double Loss)>? passages = null, int worst = 10, string? split = null)
    {
        var e = new EvalResult { Task = "causal-lm", Split = split, N = (int)Math.Min(score.Tokens, int.MaxValue) };
        e.Metrics["loss"] = score.Loss;
        e.Metrics["perplexity"] = score.Perplexity;
        e.Metrics["bits_per_token"] = score.BitsPerToken;
        if (bytes is long b) e.Metrics["bits_per_byte"] = score.BitsPerByte(b);
        e.Metrics["tokens"] = score.Tokens;
        if (passages != null)
            foreach (var (t, l) in passages.OrderByDescending(p => p.Loss).Take(worst)) e.WorstExamples.Add(new WorstExample(t, null, null, l));
        return e;
    }

    /// <summary>A generation result: corpus BLEU, chrF, ROUGE F-measures and exact match, plus samples; the worst
    /// examples are the segments with the lowest sentence BLEU (loss = 100 − sentence BLEU).</summary>
    public static EvalResult ForGeneration(IReadOnlyList<string> prompts, IReadOnlyList<string> outputs, IReadOnlyList<string> references, int samples = 5, int worst = 10, string? split = null)
    {
        var refs = new[] { references };
        var e = new EvalResult { Task = "generation", Split = split, N = outputs.Count };
        e.Metrics["bleu"] = Bleu.Corpus(outputs, refs).Score;
        e.Metrics["chrf"] = Chrf.Corpus(outputs, refs);
        foreach (var (k, v) in Rouge.Corpus(references, outputs)) e.Metrics[k] = v.FMeasure;
        e.Metrics["exact_match"] = outputs.Zip(references).Count(p => p.First == p.Second) / (double)outputs.Count;
        for (int i = 0; i < Math.Min(samples, outputs.Count); i++) e.Samples.Add(new GenerationSample(prompts[i], outputs[i], references[i]));
        var sb = Enumerable.Range(0, outputs.Count).Select(i => (i, s: Bleu.Sentence(outputs[i], [references[i]]).Score)).OrderBy(x => x.s).Take(worst);
        foreach (var (i, s) in sb) e.WorstExamples.Add(new WorstExample(prompts[i], references[i], outputs[i], 100 - s));
        return e;
    }

    /// <summary>A token-classification result: seqeval entity P/R/F1 (micro as precision/recall/f1, macro, weighted),
    /// per entity type, token accuracy; worst examples are the sentences with the most wrong tags.</summary>
    public static EvalResult ForTokenClassification(IReadOnlyList<IReadOnlyList<string>> gold, IReadOnlyList<IReadOnlyList<string>> pred,
        IReadOnlyList<IReadOnlyList<string>>? words = null, int worst = 10, string? split = null)
    {
        var (perType, micro, macro, weighted, acc) = Seqeval.Evaluate(gold, pred);
        var e = new EvalResult { Task = "token-classification", Split = split, N = gold.Count, PerClass = perType };
        e.Metrics["precision"] = micro.Precision; e.Metrics["recall"] = micro.Recall; e.Metrics["f1"] = micro.F1;
        e.Metrics["macro_f1"] = macro.F1; e.Metrics["weighted_f1"] = weighted.F1; e.Metrics["token_accuracy"] = acc;
        if (words != null)
        {
            var bad = Enumerable.Range(0, gold.Count).Select(i => (i, wrong: gold[i].Zip(pred[i]).Count(p => p.First != p.Second)))
                .Where(x => x.wrong > 0).OrderByDescending(x => x.wrong).Take(worst);
            foreach (var (i, wrong) in bad)
                e.WorstExamples.Add(new WorstExample(string.Join(' ', words[i]), string.Join(' ', gold[i]), string.Join(' ', pred[i]), wrong));
        }
        return e;
    }

    /// <summary>An extractive-QA result: SQuAD exact_match and f1 (percent); worst examples are the questions
    /// with the lowest token F1 (loss = 1 − F1). <paramref name="questions"/> may be null.</summary>
    public static EvalResult ForQuestionAnswering(IReadOnlyList<string> predictions, IReadOnlyList<IReadOnlyList<string>> golds,
        IReadOnlyList<string>? questions = null, int worst = 10, string? split = null)
    {
        var (em, f1, per) = Squad.Evaluate(predictions, golds);
        var e = new EvalResult { Task = "question-answering", Split = split, N = predictions.Count };
        e.Metrics["exact_match"] = em;
        e.Metrics["f1"] = f1;
        if (questions != null)
            foreach (int i in Enumerable.Range(0, per.Length).Where(i => per[i] < 1).OrderBy(i => per[i]).Take(worst))
                e.WorstExamples.Add(new WorstExample(questions[i], string.Join(" | ", golds[i]), predictions[i], 1 - per[i]));
        return e;
    }

    /// <summary>eval.json as a JSON object.</summary>
    public JsonObject ToJson()
    {
        var metrics = new JsonObject();
        foreach (var (k, v) in Metrics) metrics[k] = v;
        if (PerClass != null)
            metrics["per_class"] = new JsonObject(PerClass.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)new JsonObject
            {
                ["precision"] = kv.Value.Precision, ["recall"] = kv.Value.Recall, ["f1"] = kv.Value.F1, ["support"] = kv.Value.Support,
            })));
        var o = new JsonObject();
        if (Task != null) o["task"] = Task;
        if (Split != null) o["split"] = Split;
        if (N != null) o["n"] = N;
        if (ModelSource != null) o["model_source"] = ModelSource.DeepClone();
        o["metrics"] = metrics;
        if (Intervals.Count > 0)
            o["confidence_intervals"] = new JsonObject(Intervals.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)new JsonObject
            {
                ["estimate"] = kv.Value.Estimate, ["low"] = kv.Value.Low, ["high"] = kv.Value.High,
                ["confidence"] = kv.Value.Confidence, ["samples"] = kv.Value.Samples, ["seed"] = kv.Value.Seed,
            })));
        if (ConfusionLabels != null && ConfusionMatrix != null)
        {
            var rows = new JsonArray();
            for (int r = 0; r < ConfusionLabels.Count; r++)
                rows.Add(new JsonArray(Enumerable.Range(0, ConfusionLabels.Count).Select(c => (JsonNode?)ConfusionMatrix[r, c]).ToArray()));
            o["confusion_matrix"] = new JsonObject { ["labels"] = new JsonArray(ConfusionLabels.Select(l => (JsonNode?)l).ToArray()), ["matrix"] = rows };
        }
        if (WorstExamples.Count > 0)
            o["worst_examples"] = new JsonArray(WorstExamples.Select(w => (JsonNode?)new JsonObject { ["text"] = w.Text, ["gold"] = w.Gold, ["pred"] = w.Pred, ["loss"] = w.Loss }).ToArray());
        if (Baseline != null) Baseline.WriteTo(o);
        if (Samples.Count > 0)
            o["samples"] = new JsonArray(Samples.Select(s => (JsonNode?)new JsonObject { ["prompt"] = s.Prompt, ["output"] = s.Output, ["reference"] = s.Reference }).ToArray());
        return o;
    }

    /// <summary>Reads eval.json; <paramref name="source"/> names the file in error messages.</summary>
    public static EvalResult FromJson(JsonObject o, string source = "eval.json")
    {
        var e = new EvalResult { Task = Str(o["task"]), Split = Str(o["split"]) };
        if (AsNumber(o["n"]) is double n) e.N = (int)n;
        var metrics = o["metrics"] as JsonObject ?? throw new InvalidDataException($"{source}: missing the \"metrics\" object");
        foreach (var (k, v) in metrics)
        {
            if (AsNumber(v) is double d) e.Metrics[k] = d;
            else if (k == "per_class" && v is JsonObject pc)
                e.PerClass = pc.ToDictionary(kv => kv.Key, kv => kv.Value is JsonObject s
                    ? new PrfScore(Num(s, "precision", source), Num(s, "recall", source), Num(s, "f1", source), (int)Num(s, "support", source))
                    : throw new InvalidDataException($"{source}: metrics.per_class.{kv.Key} should be an object"));
        }
        if (o["confidence_intervals"] is JsonObject ci)
            foreach (var (k, v) in ci)
                if (v is JsonObject c)
                    e.Intervals[k] = new ConfidenceInterval(Num(c, "estimate", source), Num(c, "low", source), Num(c, "high", source),
                        Num(c, "confidence", source), (int)Num(c, "samples", source), (int)Num(c, "seed", source));
        if (o["confusion_matrix"] is JsonObject cm)
        {
            var labels = (cm["labels"] as JsonArray ?? throw new InvalidDataException($"{source}: confusion_matrix.labels missing")).Select(x => x?.ToString() ?? "").ToList();
            var rows = cm["matrix"] as JsonArray ?? throw new InvalidDataException($"{source}: confusion_matrix.matrix missing");
            if (rows.Count != labels.Count) throw new InvalidDataException($"{source}: confusion_matrix has {rows.Count} rows for {labels.Count} labels");
            var m = new int[labels.Count, labels.Count];
            for (int r = 0; r < rows.Count; r++)
            {
                var row = rows[r] as JsonArray;
                if (row == null || row.Count != labels.Count) throw new InvalidDataException($"{source}: confusion_matrix.matrix[{r}] should hold {labels.Count} counts");
                for (int c = 0; c < labels.Count; c++) m[r, c] = (int)(AsNumber(row[c]) ?? throw new InvalidDataException($"{source}: confusion_matrix.matrix[{r}][{c}] should be a number"));
            }
            e.ConfusionLabels = labels;
            e.ConfusionMatrix = m;
        }
        if (o["worst_examples"] is JsonArray we)
            foreach (var x in we.OfType<JsonObject>())
                e.WorstExamples.Add(new WorstExample(Str(x["text"]) ?? "", Str(x["gold"]), Str(x["pred"]), AsNumber(x["loss"])));
        e.Baseline = BaselineSummary.ReadFrom(o, source);
        if (o["samples"] is JsonArray sa)
            foreach (var x in sa.OfType<JsonObject>())
                e.Samples.Add(new GenerationSample(Str(x["prompt"]) ?? "", Str(x["output"]) ?? "", Str(x["reference"])));
        return e;
    }

    private static string? Str(JsonNode? n) => n switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        _ => n.ToJsonString(),
    };

    private static double Num(JsonObject o, string key, string source) =>
        AsNumber(o[key]) ?? throw new InvalidDataException($"{source}: \"{key}\" should be a number");

    /// <summary>The number a JSON node holds (parsed or built in code, any numeric type), else null.</summary>
    internal static double? AsNumber(JsonNode? n) =>
        n is JsonValue v && v.GetValueKind() == JsonValueKind.Number
            ? double.Parse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture) : null;

    /// <summary>An input text as a report shows it: as written (case, accents and punctuation kept), with runs of
    /// spaces folded to one and blank lines to one line break, and cut at a word boundary after at most <paramref name="maxChars"/> characters
    /// with "… (+N characters)" saying how much was left out.</summary>
    public static string Excerpt(string text, int maxChars = 300)
    {
        // Blank lines and indentation folded; a line break (the pair's separator) kept as one.
        string folded = System.Text.RegularExpressions.Regex.Replace(text.Replace("\r", ""), @"[^\S\n]+", " ");
        folded = System.Text.RegularExpressions.Regex.Replace(folded, @" ?\n[\s]*", "\n").Trim();
        if (folded.Length <= maxChars) return folded;
        int cut = folded.LastIndexOf(' ', maxChars);
        if (cut < maxChars * 2 / 3) cut = maxChars;   // one long word: cut inside it
        if (char.IsHighSurrogate(folded[cut - 1])) cut--;
        return $"{folded[..cut].TrimEnd()} … (+{folded.Length - cut} characters)";
    }

    /// <summary>A metric value for tables: integers as integers, others with 4 decimals.</summary>
    public static string Format(double v) =>
        double.IsNaN(v) ? "n/a" : v == Math.Floor(v) && Math.Abs(v) < 1e12 ? v.ToString("0", CultureInfo.InvariantCulture) : v.ToString("0.0000", CultureInfo.InvariantCulture);

    /// <summary>eval.json text (indented).</summary>
    public string ToJsonString() => ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true });
}
