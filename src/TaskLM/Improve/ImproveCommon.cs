// Shared pieces of the improvement verbs: labelled rows (read, stratified samples and splits), scoring a model
// folder on a split (predictions, a metric with its bootstrap interval), peak memory, and text tables.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;
using TaskLM.Data.Tokenization;
using TaskLM.Evaluation;
using TaskLM.Hf;
using TaskLM.Models;
using TaskLM.Recipes;
using TaskLM.Tasks;
using TaskLM.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Improve;

/// <summary>Rows of a labelled data file and the seeded, stratified ways the verbs cut them.</summary>
public static class LabelledRows
{
    /// <summary>Every row of <paramref name="path"/> (JSONL, CSV, TSV, Parquet and their .gz forms), fields as read.</summary>
    public static List<JsonObject> Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: data file not found", path);
        var rows = DataImport.Read(path, new ImportOptions(), new RowErrors(OnError.Fail)).Select(r => r.Fields).ToList();
        if (rows.Count == 0) throw new InvalidDataException($"{path}: no rows");
        return rows;
    }

    /// <summary>The row's label as text; a row without one is an error naming the file and row.</summary>
    public static string Label(JsonObject row, string column, string source, int index) =>
        row[column] is { } v ? (v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : v.ToJsonString())
            : throw new InvalidDataException($"{source}: row {index + 1} has no label column '{column}' (columns: {string.Join(", ", row.Select(kv => kv.Key))})");

    /// <summary>The rows of each label in a seeded random order (labels sorted ordinally). Taking a prefix of every
    /// group gives a stratified sample; the prefixes of one seed are nested (the 25% sample holds the 10% one).</summary>
    public static SortedDictionary<string, List<JsonObject>> ShuffledByLabel(IReadOnlyList<JsonObject> rows, string labelColumn, int seed, string source)
    {
        var groups = new SortedDictionary<string, List<JsonObject>>(StringComparer.Ordinal);
        for (int i = 0; i < rows.Count; i++)
        {
            string l = Label(rows[i], labelColumn, source, i);
            if (!groups.TryGetValue(l, out var g)) groups[l] = g = [];
            g.Add(rows[i]);
        }
        var rng = new Random(seed);
        foreach (var g in groups.Values)
            for (int i = g.Count - 1; i > 0; i--) { int j = rng.Next(i + 1); (g[i], g[j]) = (g[j], g[i]); }
        return groups;
    }

    /// <summary>A stratified sample of about <paramref name="fraction"/> of the rows: ceil(fraction · n_c) of each label
    /// (at least one), in a seeded order that mixes labels (a split made by `data split` lists one label first).</summary>
    public static List<JsonObject> StratifiedSample(IReadOnlyList<JsonObject> rows, string labelColumn, double fraction, int seed, string source)
    {
        if (fraction is <= 0 or > 1) throw new ArgumentException($"fraction {fraction.ToString(CultureInfo.InvariantCulture)}: must be in (0, 1]");
        var groups = ShuffledByLabel(rows, labelColumn, seed, source);
        var taken = groups.Values.SelectMany(g => g.Take(Math.Max(1, (int)Math.Ceiling(fraction * g.Count - 1e-9)))).ToList();
        return Mix(taken, seed);
    }

    /// <summary>Rows of each label split into (rest, held out) with round(fraction · n_c) held out (at least one
    /// when the label has two or more rows).</summary>
    public static (List<JsonObject> Kept, List<JsonObject> HeldOut) StratifiedSplit(IReadOnlyList<JsonObject> rows, string labelColumn, double fraction, int seed, string source)
    {
        var rest = new List<JsonObject>(); var held = new List<JsonObject>();
        foreach (var g in ShuffledByLabel(rows, labelColumn, seed, source).Values)
        {
            int k = g.Count < 2 ? 0 : Math.Clamp((int)Math.Round(fraction * g.Count), 1, g.Count - 1);
            held.AddRange(g.Take(k)); rest.AddRange(g.Skip(k));
        }
        return (Mix(rest, seed + 1), Mix(held, seed + 2));
    }

    /// <summary>A seeded shuffle (a copy).</summary>
    public static List<JsonObject> Mix(IEnumerable<JsonObject> rows, int seed)
    {
        var list = rows.ToList();
        var rng = new Random(seed);
        for (int i = list.Count - 1; i > 0; i--) { int j = rng.Next(i + 1); (list[i], list[j]) = (list[j], list[i]); }
        return list;
    }

    /// <summary>Writes rows as JSONL (deep copies, so one row may go to several files).</summary>
    public static string Write(string path, IEnumerable<JsonObject> rows)
    {
        JsonlFile.Write(path, rows.Select(r => (JsonObject)r.DeepClone()));
        return path;
    }

    /// <summary>Label counts, "ham 120, spam 80".</summary>
    public static string Counts(IEnumerable<JsonObject> rows, string labelColumn) =>
        string.Join(", ", rows.Select((r, i) => Label(r, labelColumn, "rows", i)).GroupBy(x => x, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} {g.Count()}"));
}

/// <summary>A model's predictions on one split (classification), with the label names of its head.</summary>
public sealed record SplitPredictions(string Split, IReadOnlyList<string> Gold, IReadOnlyList<string> Predicted, float[][] Probabilities, IReadOnlyList<string> Labels)
{
    /// <summary>The metric over a multiset of example indices (a bootstrap resample), sklearn's definitions.</summary>
    public double Metric(string name, IReadOnlyList<int>? indices = null)
    {
        var g = indices == null ? Gold : indices.Select(i => Gold[i]).ToList();
        var p = indices == null ? Predicted : indices.Select(i => Predicted[i]).ToList();
        return Scoring.Metric(name, g, p);
    }

    /// <summary>The metric with its 95% percentile bootstrap interval over the split's examples.</summary>
    public ConfidenceInterval WithInterval(string name, int samples = 1000, int seed = 0) =>
        Bootstrap.Compute(Gold.Count, idx => Metric(name, idx), samples, 0.95, seed);
}

/// <summary>Loads a trained model folder and scores it on a split the way training reads data.</summary>
public static class Scoring
{
    /// <summary>Metrics the improvement verbs can put an interval on (classification, from predictions).</summary>
    public static double Metric(string name, IReadOnlyList<string> gold, IReadOnlyList<string> pred)
    {
        var rep = ClassificationMetrics.Compute(gold, pred);
        return name switch
        {
            "accuracy" => rep.Accuracy,
            "macro_f1" => rep.Macro.F1, "micro_f1" => rep.Micro.F1, "weighted_f1" => rep.Weighted.F1,
            "macro_precision" => rep.Macro.Precision, "macro_recall" => rep.Macro.Recall,
            _ when name.StartsWith("f1_", StringComparison.Ordinal) => rep.PerClass.TryGetValue(name[3..], out var s) ? s.F1 : 0.0,
            _ => throw new ArgumentException($"metric '{name}': use accuracy, macro_f1, micro_f1, weighted_f1, macro_precision, macro_recall or f1_<label>"),
        };
    }

    /// <summary>The metric a recipe chooses its best model by (classification: macro_f1 when it names none or names loss).</summary>
    public static string TaskMetric(Recipe r, string? given)
    {
        if (given != null) return given;
        string? es = r.Training.EarlyStopping?.Metric;
        if (r.Task == "classification") return es is null or "loss" ? "macro_f1" : es;
        return es ?? "loss";
    }

    /// <summary>A loaded model folder with what it needs to read data: tokenizer, collator, label names.</summary>
    public sealed class LoadedModel(ITaskModel model, ITokenizer? tokenizer, Collator collator, IReadOnlyList<string>? labels, Recipe recipe) : IDisposable
    {
        public ITaskModel Model { get; } = model;
        public ITokenizer? Tokenizer { get; } = tokenizer;
        public Collator Collator { get; } = collator;
        public IReadOnlyList<string>? Labels { get; } = labels;
        public Recipe Recipe { get; } = recipe;
        public void Dispose() => Model.Module.Dispose();
    }

    /// <summary>Loads <paramref name="modelDir"/> (an HF folder: a run's best/) for <paramref name="recipe"/>'s task.</summary>
    public static LoadedModel Load(string modelDir, Recipe recipe, Device device)
    {
        string task = recipe.Task == "generation" ? "causal-lm" : recipe.Task;
        var model = ModelFactory.ForInference(modelDir, task);
        model.Module.to(device);
        model.Module.eval();
        IReadOnlyList<string>? labels = model.Config["id2label"] is JsonObject && recipe.Task is "classification" or "token-classification"
            ? HfConfig.LabelsOf(model.Config, Path.Combine(modelDir, "config.json")) : null;
        string? tokSource = recipe.Tokenizer ?? (ModelFactory.HasTokenizerFiles(modelDir) ? modelDir : ModelFactory.DefaultTokenizerSource(recipe.Model.Init));
        ITokenizer? tok = tokSource != null ? TokenizerLoader.Load(tokSource) : null;
        return new LoadedModel(model, tok, TrainingRun.MakeCollator(recipe, model, tok, device), labels, recipe);
    }

    /// <summary>Tokenized examples of <paramref name="path"/> as the model reads them.</summary>
    public static List<Example> Examples(LoadedModel m, string path) => TaskData.Load(m.Recipe, path, m.Tokenizer, m.Labels).Examples;

    /// <summary>Class probabilities and argmax predictions of a classifier on <paramref name="path"/>.</summary>
    public static SplitPredictions Predict(LoadedModel m, string path, string split, int batchSize = 32)
    {
        if (m.Labels == null) throw new InvalidOperationException($"{path}: scoring predictions needs a classification model with id2label");
        var ex = Examples(m, path);
        var proba = BaselineStage.Probabilities(m.Model, ex, m.Collator, batchSize);
        string Name(int c) => c >= 0 && c < m.Labels.Count ? m.Labels[c] : c.ToString(CultureInfo.InvariantCulture);
        var gold = ex.Select(e => Name(e.Label)).ToList();
        var pred = proba.Select(p => Name(Array.IndexOf(p, p.Max()))).ToList();
        return new SplitPredictions(split, gold, pred, proba, m.Labels);
    }

    /// <summary>Inference speed on real examples: median latency of one example (batch 1) and examples per
    /// second at batch 32, after warm-up forwards. Returns (ms, examples/s at 1, examples/s at 32).</summary>
    public static (double LatencyMs, double Throughput1, double Throughput32) Speed(LoadedModel m, IReadOnlyList<Example> examples, int single = 40, int batched = 256)
    {
        if (examples.Count == 0) throw new InvalidDataException("no examples to time inference on");
        using var _ = no_grad();
        m.Model.Module.eval();
        void Forward(IReadOnlyList<Example> chunk)
        {
            using var scope = NewDisposeScope();
            var o = m.Model.Forward(m.Collator.Collate(chunk.ToList()));
            // Reading one value waits for the device (CUDA runs asynchronously).
            (o.Logits ?? o.StartLogits)?.sum().item<float>();
        }
        var ones = Enumerable.Range(0, Math.Max(single, 1)).Select(i => examples[i % examples.Count]).ToList();
        for (int i = 0; i < 3; i++) Forward([ones[i % ones.Count]]);
        var times = new List<double>();
        var sw = new Stopwatch();
        foreach (var e in ones) { sw.Restart(); Forward([e]); times.Add(sw.Elapsed.TotalMilliseconds); }
        times.Sort();
        double median = times.Count % 2 == 1 ? times[times.Count / 2] : (times[times.Count / 2 - 1] + times[times.Count / 2]) / 2;
        var many = Enumerable.Range(0, Math.Max(batched, 32)).Select(i => examples[i % examples.Count]).ToList();
        Forward(many.Take(32).ToList());
        sw.Restart();
        for (int i = 0; i < many.Count; i += 32) Forward(many.Skip(i).Take(32).ToList());
        double secs = sw.Elapsed.TotalSeconds;
        return (median, 1000.0 / times.Average(), many.Count / Math.Max(secs, 1e-9));
    }
}

/// <summary>This process's peak resident memory. On Linux the peak can be reset (writing 5 to /proc/self/clear_refs),
/// so each model of a comparison gets its own peak; elsewhere the process-wide peak is all there is.</summary>
public static class PeakMemory
{
    /// <summary>Resets the peak to the current resident size; false where the system cannot.</summary>
    public static bool Reset()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); return true; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DirectoryNotFoundException or NotSupportedException) { return false; }
    }

    /// <summary>Peak resident bytes since the last reset (VmHWM), else the process's peak working set.</summary>
    public static long Bytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DirectoryNotFoundException) { }
        using var p = Process.GetCurrentProcess();
        return p.PeakWorkingSet64;
    }
}

/// <summary>A table for people: aligned plain text (a redirected console never wraps it) and Markdown.</summary>
public sealed class TextTable(IReadOnlyList<string> headers)
{
    readonly List<string[]> _rows = [];
    public IReadOnlyList<string> Headers { get; } = headers;

    public TextTable Add(params string[] cells) { _rows.Add(cells); return this; }

    public string ToText()
    {
        var w = Headers.Select((h, i) => Math.Max(h.Length, _rows.Count == 0 ? 0 : _rows.Max(r => r[i].Length))).ToArray();
        string Line(IReadOnlyList<string> c) => string.Join("  ", c.Select((x, i) => x.PadRight(w[i]))).TrimEnd();
        var sb = new StringBuilder();
        sb.AppendLine(Line(Headers)).AppendLine(Line(w.Select(n => new string('-', n)).ToList()));
        foreach (var r in _rows) sb.AppendLine(Line(r));
        return sb.ToString();
    }

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine("| " + string.Join(" | ", Headers) + " |");
        sb.AppendLine("|" + string.Join("|", Headers.Select(_ => "---")) + "|");
        foreach (var r in _rows) sb.AppendLine("| " + string.Join(" | ", r.Select(c => c.Replace("|", "\\|"))) + " |");
        return sb.ToString();
    }
}

/// <summary>Small formatting and file helpers.</summary>
public static class Io
{
    public static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>Writes text through a temporary file renamed into place (a reader never sees half a file).</summary>
    public static void WriteAtomically(string path, string text)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir != null) Directory.CreateDirectory(dir);
        string tmp = path + $".{Environment.ProcessId}.tmp";
        File.WriteAllText(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }

    public static void WriteJson(string path, JsonNode json) => WriteAtomically(path, json.ToJsonString(Indented) + "\n");

    /// <summary>A JSON number as double, whatever CLR type it was written from (long, int, double).</summary>
    public static double D(JsonNode? n) => EvalResult.AsNumber(n) ?? double.NaN;

    public static string F(double v, string format = "0.0000") => double.IsFinite(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "-";

    public static string Count(long n) => n >= 1e9 ? $"{n / 1e9:0.00}B" : n >= 1e6 ? $"{n / 1e6:0.00}M" : n >= 1e3 ? $"{n / 1e3:0.0}K" : n.ToString(CultureInfo.InvariantCulture);

    public static string MiB(long bytes) => (bytes / (double)(1 << 20)).ToString("0", CultureInfo.InvariantCulture) + " MiB";

    /// <summary>A folder name for a model spec ("models/tasklm-bert-mini" → "tasklm-bert-mini").</summary>
    public static string Slug(string spec)
    {
        string s = Path.GetFileName(spec.TrimEnd('/', '\\'));
        if (s is "best" or "" ) s = Path.GetFileName(Path.GetDirectoryName(spec.TrimEnd('/', '\\')) ?? "model") + "-best";
        return new string(s.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '-').ToArray());
    }
}
